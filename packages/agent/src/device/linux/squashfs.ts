import { open, stat } from 'node:fs/promises';
import { runTool } from '../run-tool.js';

/**
 * Squashfs slots (Edgeplane OS 2): the root filesystem as a compressed, read-only squashfs, about a
 * third of the ext4 it was before, so the slots are small and the data partition gets the disk.
 *
 * The compressor is one GRUB reads: GRUB 2.06's squash4 reads gzip, xz and lzo squashfs only (not
 * zstd, not lz4: tried with grub-fstest of grub-common 2.06-13 on images from mksquashfs 4.5.1),
 * and GRUB loads the kernel and initramfs out of the slot. Debian's signed grubx64.efi has squash4,
 * gzio and xzio built in. gzip, because the device itself writes its slots (mksquashfs from the
 * image's tree, on small CPUs), at zlib's own default level 6. Measured on the OS 2 tree (781 MiB,
 * 2 cores): gzip-6 240 MiB in 13 s, gzip-9 (mksquashfs's default) 238 MiB in 70 s, gzip-1 265 MiB
 * in 5 s, xz 194 MiB in 75 s. gzip also reads faster than xz at boot.
 */
const SQUASHFS_COMPRESSOR = ['-comp', 'gzip', '-Xcompression-level', '6'];

/** squashfs's magic at offset 0 ("hsqs", little-endian 0x73717368). */
const SQUASHFS_MAGIC = Buffer.from('hsqs');

/** Whether the file or block device holds a squashfs filesystem (its superblock magic at 0). */
export async function isSquashfs(path: string): Promise<boolean> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return false;
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return bytesRead === 4 && buf.equals(SQUASHFS_MAGIC);
  } finally {
    await fh.close();
  }
}

/**
 * mksquashfs arguments of a slot image: reproducible (the default of squashfs-tools 4.5), the
 * filesystem's own time pinned (`mkfsTime`, seconds; files keep the tree's times), no progress bar.
 */
function mksquashfsArgs(tree: string, output: string, mkfsTime?: number): string[] {
  return [
    tree,
    output,
    '-noappend',
    ...SQUASHFS_COMPRESSOR,
    '-reproducible',
    '-quiet',
    '-no-progress',
    ...(mkfsTime !== undefined ? ['-mkfs-time', String(mkfsTime)] : []),
  ];
}

/** Writes `tree` into a squashfs image file (replaced if it exists). Returns its size in bytes. */
export async function buildSquashfs(tree: string, output: string, signal?: AbortSignal, mkfsTime?: number): Promise<number> {
  await runTool('mksquashfs', mksquashfsArgs(tree, output, mkfsTime), { timeoutMs: 30 * 60_000, signal });
  return (await stat(output)).size;
}

/** A file's content from a squashfs image or slot (undefined when it has no such file). */
export async function squashfsCat(image: string, path: string, signal?: AbortSignal): Promise<string | undefined> {
  return runTool('unsquashfs', ['-cat', image, path], { timeoutMs: 60_000, signal }).then(
    (r) => r.stdout,
    () => undefined,
  );
}
