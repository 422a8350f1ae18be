import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Slot } from '@edgeplane/protocol';
import { writeFileAtomic } from '../../atomic-file.js';
import { copySlotImage } from '../../oci/delta/slot-image.js';
import { readImageInfo } from '../../oci/os-image.js';
import { GrubEnv, type SlotBoot, type SlotMeta } from '../boot-env.js';
import { runTool } from '../run-tool.js';
import { buildSquashfs, isSquashfs, squashfsCat } from './squashfs.js';

/** image.json of an Edgeplane OS image (see oci/os-image.ts). */
const IMAGE_INFO_PATH = 'usr/lib/edgeplane/image.json';

/** Where the slot metadata lives inside a slot's filesystem (read back with debugfs, without mounting). */
export const SLOT_META_PATH = 'usr/lib/edgeplane/slot.json';

export interface LinuxSlotOptions {
  /** Device root ('/' on a real machine). */
  root: string;
  /** grubenv file, default <root>/boot/efi/EFI/edgeplane/grubenv (Edgeplane OS: the ESP) when it exists, else <root>/boot/grub/grubenv. */
  grubenv?: string;
  /**
   * Slot targets: a block device or an image file per slot. Default: the GPT partitions labelled
   * root-a / root-b, i.e. <root>/dev/disk/by-partlabel/root-a|root-b.
   */
  targets?: Partial<Record<Slot, string>>;
  /** Size of a slot image FILE (block devices use their whole size); default twice the tree, at least 64 MiB. */
  imageSizeBytes?: number;
  /** /proc/cmdline to read the booted slot from; default <root>/proc/cmdline. */
  cmdline?: string;
}

/**
 * A/B slots of a real machine. A slot is an ext4 filesystem written with `mkfs.ext4 -d <tree>`, or,
 * for an image whose image.json says `"slotFilesystem": "squashfs"` (Edgeplane OS 2), a squashfs
 * from `mksquashfs <tree>` (no mount, no loop device needed either way), on the slot's partition or
 * image file; the booted slot comes from the kernel command line (`edgeplane.slot=A|B|recovery`,
 * set by boot/grub.cfg.template).
 */
export class LinuxSlots implements SlotBoot {
  readonly grubenv: GrubEnv;

  constructor(private readonly options: LinuxSlotOptions) {
    this.grubenv = new GrubEnv(options.grubenv ?? defaultGrubenv(options.root));
  }

  target(slot: Slot): string {
    return this.options.targets?.[slot] ?? join(this.options.root, 'dev/disk/by-partlabel', partitionName(slot));
  }

  async bootedSlot(): Promise<Slot> {
    const cmdline = await readFile(this.options.cmdline ?? join(this.options.root, 'proc/cmdline'), 'utf8').catch(() => '');
    const m = /(?:^|\s)edgeplane\.slot=(A|B|recovery)(?:\s|$)/.exec(cmdline);
    if (m) return m[1] as Slot;
    // Not booted through the Edgeplane grub.cfg (e.g. first install): the committed slot is the best guess.
    return (await this.grubenv.bootState()).activeSlot;
  }

  /**
   * Writes `rootfs` into the slot so that a power cut at any moment leaves either the complete,
   * verified image or a slot the agent treats as empty:
   *  1. the slot's first MiB (the old superblock) is zeroed, so the old content no longer reads;
   *  2. `mkfs.ext4 -d` writes the tree (no mount, no loop device), then fsync;
   *  3. verification: `e2fsck -fn` finds a clean filesystem and the image.json read back matches;
   *  4. only then the slot record (usr/lib/edgeplane/slot.json, with the digest) is written into it
   *     with `debugfs -w`, and fsync again. readSlot() reports a digest only when that record exists.
   * A squashfs slot cannot be written into after mksquashfs, so its record is in the tree it is made
   * from; what makes the slot readable is its superblock, and that is written last (writeSquashfs).
   */
  async writeSlot(slot: Slot, rootfs: string, meta: SlotMeta, signal?: AbortSignal): Promise<void> {
    if (slot === 'recovery') throw new Error('the recovery slot is written by the installer only');
    await this.write(slot, rootfs, meta, signal);
    await rm(rootfs, { recursive: true, force: true });
  }

  /**
   * The installer's write of the recovery slot (`edgeplane image build --disk`): the same protocol
   * as writeSlot, and `rootfs` is kept (the builder writes slot A from it next). The agent never
   * writes the recovery slot, so a device always has the image it was installed with to boot.
   */
  async writeRecovery(rootfs: string, meta: SlotMeta, signal?: AbortSignal): Promise<void> {
    await this.write('recovery', rootfs, meta, signal);
  }

  private async write(slot: Slot, rootfs: string, meta: SlotMeta, signal?: AbortSignal): Promise<void> {
    const target = this.target(slot);
    const label = partitionName(slot);
    const st = await stat(target).catch(() => undefined);
    // Image files are for explicitly configured targets (tests, labs); a missing partition is an error.
    if (!st?.isBlockDevice() && !this.options.targets?.[slot])
      throw new Error(`cannot write slot ${slot}: no block device ${target} (no GPT partition named ${label}?)`);
    if ((await readImageInfo(rootfs))?.slotFilesystem === 'squashfs') return this.writeSquashfs(slot, target, !!st?.isBlockDevice(), rootfs, meta, signal);
    const record = join(dirname(rootfs), `slot-${slot}.json`);
    await writeFileAtomic(record, `${JSON.stringify(meta, null, 2)}\n`, 0o644);
    await rm(join(rootfs, SLOT_META_PATH), { force: true });
    let written = target;
    if (st?.isBlockDevice()) {
      await invalidate(target);
      await runTool('mkfs.ext4', ['-F', '-q', '-L', label, '-d', rootfs, target], { timeoutMs: 30 * 60_000, signal });
    } else {
      // An image file: build it beside the target and rename, so a crash never leaves half a slot.
      const size = this.options.imageSizeBytes ?? Math.max(64 * 1024 ** 2, 2 * (await treeBytes(rootfs)));
      written = `${target}.partial`;
      await rm(written, { force: true });
      await runTool('mkfs.ext4', ['-F', '-q', '-L', label, '-d', rootfs, written, `${Math.ceil(size / 1024)}k`], { timeoutMs: 30 * 60_000, signal });
    }
    await fsyncPath(written);
    await verifySlot(written, rootfs, signal);
    await runTool('debugfs', ['-w', '-R', `write ${record} /${SLOT_META_PATH}`, written], { timeoutMs: 60_000, signal });
    await fsyncPath(written);
    if (written !== target) await rename(written, target);
    await rm(record, { force: true });
  }

  /**
   * A squashfs slot: the tree with its record (slot.json) goes into a squashfs image file beside the
   * tree (or `<target>.partial` for an image-file target), which is fsynced and checked (its
   * image.json and record read back with unsquashfs); then the partition's old superblock is zeroed
   * and the image copied in with its superblock last (copySlotImage), or the file renamed over the
   * target. A power cut at any moment leaves the complete, checked image or a slot without a
   * superblock, which readSlot() reports as empty.
   */
  private async writeSquashfs(slot: Slot, target: string, block: boolean, rootfs: string, meta: SlotMeta, signal?: AbortSignal): Promise<void> {
    const record = join(rootfs, SLOT_META_PATH);
    await mkdir(dirname(record), { recursive: true });
    await writeFile(record, `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
    const image = block ? join(dirname(rootfs), `slot-${slot}.squashfs`) : `${target}.partial`;
    try {
      await buildSquashfs(rootfs, image, signal);
      await fsyncPath(image);
      const expected = await readFile(join(rootfs, IMAGE_INFO_PATH), 'utf8');
      if ((await squashfsCat(image, IMAGE_INFO_PATH, signal))?.trim() !== expected.trim())
        throw new Error(`slot verification failed: /${IMAGE_INFO_PATH} reads back differently from the image`);
      if (recordDigest((await squashfsCat(image, SLOT_META_PATH, signal)) ?? '') !== meta.digest)
        throw new Error(`slot verification failed: /${SLOT_META_PATH} does not read back from the written image`);
      if (block) {
        await invalidate(target);
        await copySlotImage(image, target, signal);
      } else await rename(image, target);
    } finally {
      await rm(record, { force: true });
      await rm(image, { force: true });
    }
  }

  async slotImage(slot: Slot): Promise<string | undefined> {
    const target = this.target(slot);
    return (await stat(target).catch(() => undefined)) ? target : undefined;
  }

  /**
   * A delta update's write: the same protocol as writeSlot, with the slot image rebuilt by `fill`
   * (oci/delta/assemble.ts, which checks every chunk and the whole image's sha256) in place of
   * mkfs.ext4 -d: old superblock zeroed (or a .partial file), image written, fsync, e2fsck -fn,
   * image.json read back for the record, the record written last with debugfs -w.
   */
  async writeSlotImage(
    slot: Slot,
    fill: (path: string) => Promise<void>,
    meta: (imageJson: string | undefined) => SlotMeta,
    signal?: AbortSignal,
  ): Promise<void> {
    if (slot === 'recovery') throw new Error('the recovery slot is written by the installer only');
    const target = this.target(slot);
    const st = await stat(target).catch(() => undefined);
    if (!st?.isBlockDevice() && !this.options.targets?.[slot])
      throw new Error(`cannot write slot ${slot}: no block device ${target} (no GPT partition named ${partitionName(slot)}?)`);
    let written = target;
    if (st?.isBlockDevice()) await invalidate(target);
    else {
      written = `${target}.partial`;
      await rm(written, { force: true });
    }
    await fill(written);
    await fsyncPath(written);
    if (await isSquashfs(written)) {
      // A published squashfs slot image carries its record (oci/delta/slot-image.ts); none can be added.
      const wanted = meta(await squashfsCat(written, IMAGE_INFO_PATH, signal));
      const own = recordDigest((await squashfsCat(written, SLOT_META_PATH, signal)) ?? '');
      if (own !== wanted.digest) {
        if (written === target) await invalidate(target);
        throw new Error(`slot verification failed: the squashfs slot image records ${own ?? 'no image'}, not ${wanted.digest}`);
      }
      if (written !== target) await rename(written, target);
      return;
    }
    await runTool('e2fsck', ['-fn', written], { timeoutMs: 10 * 60_000, signal }).catch((err: Error) => {
      throw new Error(`slot verification failed: the written filesystem is not clean: ${err.message}`);
    });
    const info = await runTool('debugfs', ['-R', `cat /${IMAGE_INFO_PATH}`, written], { timeoutMs: 60_000, signal }).then(
      (r) => r.stdout || undefined,
      () => undefined,
    );
    const wanted = meta(info);
    // A published slot image carries its own record (oci/delta/slot-image.ts): for the same digest it
    // is kept, and so the slot stays the published image byte for byte, which is what a later
    // binary patch from that image needs. Otherwise the agent writes its record, as writeSlot does.
    const own = await runTool('debugfs', ['-R', `cat /${SLOT_META_PATH}`, written], { timeoutMs: 60_000, signal }).then(
      (r) => r.stdout,
      () => '',
    );
    if (recordDigest(own) !== wanted.digest) {
      const record = `${written}.slot.json`;
      await writeFileAtomic(record, `${JSON.stringify(wanted, null, 2)}\n`, 0o644);
      try {
        await runTool('debugfs', ['-w', '-R', `write ${record} /${SLOT_META_PATH}`, written], { timeoutMs: 60_000, signal });
      } finally {
        await rm(record, { force: true });
      }
      await fsyncPath(written);
    }
    if (written !== target) await rename(written, target);
  }

  /** No objection of its own: the os manager's health checks judge a real trial boot. */
  async slotHealth(_slot: Slot): Promise<string | undefined> {
    return undefined;
  }

  async readSlot(slot: Slot): Promise<SlotMeta | undefined> {
    const target = this.target(slot);
    if (!(await stat(target).catch(() => undefined))) return undefined;
    if (await isSquashfs(target)) {
      const text = await squashfsCat(target, SLOT_META_PATH);
      return text !== undefined && recordDigest(text) ? (JSON.parse(text) as SlotMeta) : undefined;
    }
    try {
      const { stdout } = await runTool('debugfs', ['-R', `cat /${SLOT_META_PATH}`, target], { timeoutMs: 30_000 });
      const meta = JSON.parse(stdout) as SlotMeta;
      return typeof meta.digest === 'string' ? meta : undefined;
    } catch {
      return undefined; // not an ext4 slot written by the agent
    }
  }
}

/** The digest a slot record (JSON) names; undefined when it is not one. */
function recordDigest(text: string): string | undefined {
  try {
    const digest = (JSON.parse(text) as { digest?: unknown }).digest;
    return typeof digest === 'string' ? digest : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the boot loader's environment is: on Edgeplane OS the ESP (mounted at /boot/efi) holds it
 * beside grub.cfg; other GRUB installs keep it in /boot/grub.
 */
export function defaultGrubenv(root: string): string {
  const esp = join(root, 'boot/efi/EFI/edgeplane/grubenv');
  return existsSync(esp) ? esp : join(root, 'boot/grub/grubenv');
}

/** GPT partition name (and filesystem label) of a slot: root-a, root-b, recovery. */
export function partitionName(slot: Slot): string {
  return slot === 'recovery' ? 'recovery' : `root-${slot.toLowerCase()}`;
}

/** Zeroes the first MiB of a slot partition (ext4's superblock is at 1 KiB, squashfs's at 0), so it no longer reads as the old image. */
async function invalidate(target: string): Promise<void> {
  const fh = await open(target, 'r+');
  try {
    await fh.write(Buffer.alloc(1024 * 1024), 0, 1024 * 1024, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a file or block device: the data is on the disk before the next step relies on it. */
async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The written filesystem is consistent and holds the image it was written from. */
async function verifySlot(target: string, rootfs: string, signal?: AbortSignal): Promise<void> {
  await runTool('e2fsck', ['-fn', target], { timeoutMs: 10 * 60_000, signal }).catch((err: Error) => {
    throw new Error(`slot verification failed: the written filesystem is not clean: ${err.message}`);
  });
  const expected = await readFile(join(rootfs, IMAGE_INFO_PATH), 'utf8').catch(() => undefined);
  if (expected === undefined) return;
  const { stdout } = await runTool('debugfs', ['-R', `cat /${IMAGE_INFO_PATH}`, target], { timeoutMs: 60_000, signal });
  if (stdout.trim() !== expected.trim()) throw new Error(`slot verification failed: /${IMAGE_INFO_PATH} reads back differently from the image`);
}

async function treeBytes(dir: string): Promise<number> {
  const { stdout } = await runTool('du', ['-sb', dir]);
  return Number(stdout.split(/\s/)[0]) || 0;
}
