/**
 * How a slot image for delta updates is made: `mkfs.ext4 -d` as the slot writer does, but with
 * everything mkfs would otherwise pick at random or from the clock pinned, so two images built
 * from trees that differ a little differ a little byte for byte too. With a random UUID, every
 * metadata block's checksum (metadata_csum seeds with the UUID) and every directory hash differ,
 * and chunking finds far less in common (measured in bench/delta-updates.bench.ts).
 *
 * e2fsprogs 1.47.0 (Debian bookworm), misc/mke2fs.c: `-U` sets the UUID, `-E hash_seed=` the
 * directory hash seed; lib/ext2fs: E2FSPROGS_FAKE_TIME replaces the clock for the superblock's
 * and the inodes' creation times. Slots are found by GPT partition name and the kernel command
 * line (edgeplane.slot=), never by filesystem UUID, so both slots may carry the same one.
 */
export const SLOT_IMAGE_UUID = '6564676c-616e-4500-8000-736c6f740001';
export const SLOT_IMAGE_LABEL = 'edgeplane-root';

export function reproducibleMkfsArgs(label = SLOT_IMAGE_LABEL): string[] {
  return ['-F', '-q', '-L', label, '-U', SLOT_IMAGE_UUID, '-E', `hash_seed=${SLOT_IMAGE_UUID}`];
}

/** Environment for the reproducible mkfs: the clock at SOURCE_DATE_EPOCH (default 2026-01-01). */
export function reproducibleMkfsEnv(epoch = Number(process.env.SOURCE_DATE_EPOCH) || 1767225600): NodeJS.ProcessEnv {
  return { ...process.env, E2FSPROGS_FAKE_TIME: String(epoch) };
}
