import { execFile } from 'node:child_process';
import { rm, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
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

const MiB = 1024 * 1024;

/**
 * Writes the tree into a reproducible ext4 slot image file of `sizeBytes` (default twice the tree,
 * rounded up to 64 MiB, at least 64 MiB, so an image and its successor usually share the size and
 * so the layout). Returns the image size. Used by the delta publisher; not a Device side effect.
 */
export async function buildSlotImage(tree: string, image: string, sizeBytes?: number, signal?: AbortSignal): Promise<number> {
  const run = promisify(execFile);
  let size = sizeBytes;
  if (!size) {
    const { stdout } = await run('du', ['-sb', tree], { signal });
    const tree2 = 2 * (Number(stdout.split(/\s/)[0]) || 0);
    size = Math.max(64 * MiB, Math.ceil(tree2 / (64 * MiB)) * 64 * MiB);
  }
  await rm(image, { force: true });
  await run('mkfs.ext4', [...reproducibleMkfsArgs(), '-d', tree, image, `${Math.ceil(size / 1024)}k`], { env: reproducibleMkfsEnv(), signal });
  return (await stat(image)).size;
}
