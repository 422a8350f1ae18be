import { readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Slot } from '@edgeplane/protocol';
import { writeFileAtomic } from '../atomic-file.js';
import { GrubEnv, type SlotBoot, type SlotMeta } from './boot-env.js';
import { runTool } from './run-tool.js';

/** Where the slot metadata lives inside a slot's filesystem (read back with debugfs, without mounting). */
export const SLOT_META_PATH = 'usr/lib/edgeplane/slot.json';

export interface LinuxSlotOptions {
  /** Device root ('/' on a real machine). */
  root: string;
  /** grubenv file, default <root>/boot/grub/grubenv (put it on the EFI/boot partition grub.cfg loads it from). */
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
 * A/B slots of a real machine. A slot is an ext4 filesystem written with `mkfs.ext4 -d <tree>` (no
 * mount, no loop device needed) onto the slot's partition or image file; the booted slot comes from
 * the kernel command line (`edgeplane.slot=A|B|recovery`, set by boot/grub.cfg.template).
 */
export class LinuxSlots implements SlotBoot {
  readonly grubenv: GrubEnv;

  constructor(private readonly options: LinuxSlotOptions) {
    this.grubenv = new GrubEnv(options.grubenv ?? join(options.root, 'boot/grub/grubenv'));
  }

  target(slot: Slot): string {
    return this.options.targets?.[slot] ?? join(this.options.root, 'dev/disk/by-partlabel', `root-${slot.toLowerCase()}`);
  }

  async bootedSlot(): Promise<Slot> {
    const cmdline = await readFile(this.options.cmdline ?? join(this.options.root, 'proc/cmdline'), 'utf8').catch(() => '');
    const m = /(?:^|\s)edgeplane\.slot=(A|B|recovery)(?:\s|$)/.exec(cmdline);
    if (m) return m[1] as Slot;
    // Not booted through the Edgeplane grub.cfg (e.g. first install): the committed slot is the best guess.
    return (await this.grubenv.bootState()).activeSlot;
  }

  async writeSlot(slot: Slot, rootfs: string, meta: SlotMeta, signal?: AbortSignal): Promise<void> {
    if (slot === 'recovery') throw new Error('the recovery slot is written by the installer only');
    await writeFileAtomic(join(rootfs, SLOT_META_PATH), `${JSON.stringify(meta, null, 2)}\n`, 0o644);
    const target = this.target(slot);
    const label = `root-${slot.toLowerCase()}`;
    const st = await stat(target).catch(() => undefined);
    if (st?.isBlockDevice()) {
      await runTool('mkfs.ext4', ['-F', '-q', '-L', label, '-d', rootfs, target], { timeoutMs: 30 * 60_000, signal });
    } else {
      // An image file: build it beside the target and rename, so a crash never leaves half a slot.
      const size = this.options.imageSizeBytes ?? Math.max(64 * 1024 ** 2, 2 * (await treeBytes(rootfs)));
      const tmp = `${target}.partial`;
      await rm(tmp, { force: true });
      await runTool('mkfs.ext4', ['-F', '-q', '-L', label, '-d', rootfs, tmp, `${Math.ceil(size / 1024)}k`], { timeoutMs: 30 * 60_000, signal });
      await rename(tmp, target);
    }
    await rm(rootfs, { recursive: true, force: true });
  }

  async readSlot(slot: Slot): Promise<SlotMeta | undefined> {
    const target = this.target(slot);
    if (!(await stat(target).catch(() => undefined))) return undefined;
    try {
      const { stdout } = await runTool('debugfs', ['-R', `cat /${SLOT_META_PATH}`, target], { timeoutMs: 30_000 });
      const meta = JSON.parse(stdout) as SlotMeta;
      return typeof meta.digest === 'string' ? meta : undefined;
    } catch {
      return undefined; // not an ext4 slot written by the agent
    }
  }
}

async function treeBytes(dir: string): Promise<number> {
  const { stdout } = await runTool('du', ['-sb', dir]);
  return Number(stdout.split(/\s/)[0]) || 0;
}
