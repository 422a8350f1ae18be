import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { type FileHandle, mkdir, open, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { buildSquashfs } from '../../device/linux/squashfs.js';
import { runTool } from '../../device/run-tool.js';
import { readImageInfo } from '../os-image.js';
import { OciError } from '../types.js';
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

/** Where a slot's record lives inside its filesystem (LinuxSlots SLOT_META_PATH). */
export const SLOT_RECORD_PATH = 'usr/lib/edgeplane/slot.json';

/**
 * Writes the tree into a reproducible ext4 slot image file of `sizeBytes` (default twice the tree,
 * rounded up to 64 MiB, at least 64 MiB, so an image and its successor usually share the size and
 * so the layout). Returns the image size. Used by the delta publisher; not a Device side effect.
 *
 * `record`, when given, is written into the tree as the slot's record (SLOT_RECORD_PATH) before the
 * image is made: a device that writes this image into a slot then keeps it byte for byte (the agent
 * writes its own record only into an image that lacks one for the same digest), so a later binary
 * patch from this exact image applies to the slot.
 *
 * An image whose image.json asks for squashfs slots gets a squashfs image instead (its own size;
 * `sizeBytes` does not apply), made with the filesystem time at SOURCE_DATE_EPOCH: mksquashfs is
 * reproducible by default, so the same tree gives the same bytes.
 */
export async function buildSlotImage(tree: string, image: string, sizeBytes?: number, signal?: AbortSignal, record?: Record<string, unknown>): Promise<number> {
  const epoch = Number(reproducibleMkfsEnv().E2FSPROGS_FAKE_TIME);
  if (record) {
    await mkdir(dirname(join(tree, SLOT_RECORD_PATH)), { recursive: true });
    await writeFile(join(tree, SLOT_RECORD_PATH), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
    // Its time pinned too: the same image published twice gives the same slot image.
    await utimes(join(tree, SLOT_RECORD_PATH), epoch, epoch);
  }
  if ((await readImageInfo(tree))?.slotFilesystem === 'squashfs') {
    await rm(image, { force: true });
    return buildSquashfs(tree, image, signal, epoch);
  }
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

/** How much of a slot image's start is written last: the ext4 superblock (at 1 KiB) or squashfs's (at 0) and beyond. */
const HEAD_BYTES = 64 * 1024;

/**
 * Writes a slot image in order, except its first 64 KiB: those are kept back and written only after
 * everything else is on the disk and the whole image's sha256 and size are what they must be. The
 * slot writer zeroes the old superblock first, so until then the slot has no superblock and reads
 * as empty (LinuxSlots.readSlot), even where the image carries its own slot record.
 */
export class SlotImageWriter {
  private readonly head = Buffer.alloc(HEAD_BYTES);
  private readonly hash = createHash('sha256');
  private at = 0;

  private constructor(private readonly fh: FileHandle) {}

  static async open(path: string): Promise<SlotImageWriter> {
    return new SlotImageWriter(await open(path, 'r+').catch(() => open(path, 'w')));
  }

  get written(): number {
    return this.at;
  }

  async write(data: Buffer): Promise<void> {
    this.hash.update(data);
    let from = 0;
    if (this.at < HEAD_BYTES) {
      from = Math.min(data.length, HEAD_BYTES - this.at);
      data.copy(this.head, this.at, 0, from);
    }
    await writeAll(this.fh, data.subarray(from), this.at + from);
    this.at += data.length;
  }

  /**
   * Checks size and sha256 (when a digest is given), then writes the head; throws
   * OciError('DigestMismatch') (head unwritten) otherwise.
   */
  async finish(size: number, digest?: string): Promise<void> {
    const got = `sha256:${this.hash.digest('hex')}`;
    if (this.at !== size || (digest !== undefined && got !== digest))
      throw new OciError('DigestMismatch', `the rebuilt slot image has ${got} (${this.at} bytes), the delta artifact says ${digest} (${size} bytes)`);
    await this.fh.sync();
    await writeAll(this.fh, this.head.subarray(0, Math.min(HEAD_BYTES, size)), 0);
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) done += (await fh.write(data, done, data.length - done, position + done)).bytesWritten;
}

/** Size in bytes of a block device (a file's own size for a file). */
async function targetBytes(path: string, signal?: AbortSignal): Promise<number> {
  const st = await stat(path);
  if (!st.isBlockDevice()) return st.size;
  const { stdout } = await runTool('blockdev', ['--getsize64', path], { signal });
  return Number(stdout.trim());
}

/**
 * Copies a slot image file (a squashfs made on the device) into a slot partition with the
 * SlotImageWriter, so that a power cut at any moment leaves either the whole image or a slot without
 * a superblock: the caller has zeroed the slot's first MiB; everything after the first 64 KiB is
 * written and fsynced before the head (the superblock). Refuses an image larger than the slot.
 */
export async function copySlotImage(image: string, target: string, signal?: AbortSignal): Promise<void> {
  const { size } = await stat(image);
  const room = await targetBytes(target, signal);
  if (size > room) throw new Error(`ImageTooLarge: the slot image is ${Math.ceil(size / MiB)} MiB; the slot has ${Math.floor(room / MiB)} MiB`);
  const src = await open(image, 'r');
  const writer = await SlotImageWriter.open(target);
  try {
    const buf = Buffer.alloc(4 * MiB);
    while (writer.written < size) {
      const { bytesRead } = await src.read(buf, 0, buf.length, writer.written);
      if (bytesRead === 0) break;
      await writer.write(buf.subarray(0, bytesRead));
    }
    await writer.finish(size);
  } finally {
    await src.close();
    await writer.close();
  }
}
