import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Slot } from '@edgeplane/protocol';
import { runTool } from './run-tool.js';

/**
 * Boot environment variables of the A/B scheme, stored in a GRUB environment block (grubenv) that
 * both the boot loader (load_env/save_env in grub.cfg, see boot/grub.cfg.template) and the agent
 * (through `grub-editenv`) read and write:
 *  - active_slot: the committed slot, booted by default (A when unset);
 *  - next_slot:   a slot to boot ONCE; the boot loader clears it before booting it, so any failure
 *                 to come up (hang, watchdog reset, agent-requested reboot) boots active_slot again;
 *  - try_slot:    the slot under trial, kept until the agent commits it or notices the fallback.
 */
export const BOOT_VARS = { active: 'active_slot', next: 'next_slot', trial: 'try_slot' } as const;

export interface BootState {
  activeSlot: Slot;
  nextSlot?: Slot;
  trySlot?: Slot;
}

/** A grubenv file, always read and written with the real `grub-editenv` tool. */
export class GrubEnv {
  constructor(
    readonly file: string,
    private readonly tool = 'grub-editenv',
  ) {}

  /** Creates the (1 KiB, '#'-padded) environment block if it does not exist yet. */
  async ensure(): Promise<void> {
    if (await stat(this.file).catch(() => undefined)) return;
    await mkdir(dirname(this.file), { recursive: true });
    await runTool(this.tool, [this.file, 'create']);
  }

  async list(): Promise<Record<string, string>> {
    if (!(await stat(this.file).catch(() => undefined))) return {};
    const { stdout } = await runTool(this.tool, [this.file, 'list']);
    const vars: Record<string, string> = {};
    for (const line of stdout.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return vars;
  }

  async set(vars: Record<string, string>): Promise<void> {
    await this.ensure();
    await runTool(this.tool, [this.file, 'set', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)]);
  }

  async unset(...names: string[]): Promise<void> {
    await this.ensure();
    await runTool(this.tool, [this.file, 'unset', ...names]);
  }

  /** The A/B variables; empty values count as unset (grub.cfg clears with `set next_slot=` + save_env). */
  async bootState(): Promise<BootState> {
    const vars = await this.list();
    return {
      activeSlot: asSlot(vars[BOOT_VARS.active]) ?? 'A',
      nextSlot: asSlot(vars[BOOT_VARS.next]),
      trySlot: asSlot(vars[BOOT_VARS.trial]),
    };
  }
}

function asSlot(v: string | undefined): Slot | undefined {
  return v === 'A' || v === 'B' || v === 'recovery' ? v : undefined;
}

/** What a slot holds, as recorded when it was written. */
export interface SlotMeta {
  digest: string;
  image: string;
  /** image.json of the OS image, when it follows the convention. */
  name?: string;
  version?: string;
  /** Whether the slot's /boot/vmlinuz carries a signature (Secure Boot); absent when unknown. */
  kernelSigned?: boolean;
  writtenAt: string;
}

/**
 * The A/B slot storage and boot environment of a device. LinuxDevice writes slots to partitions
 * (or image files); SimDevice to directories under its sandbox root. Both use a real grubenv file.
 */
export interface SlotBoot {
  /** The grubenv file the boot loader reads. */
  readonly grubenv: GrubEnv;
  /** The slot the running system booted from. */
  bootedSlot(): Promise<Slot>;
  /** Replaces the content of `slot` with the root filesystem tree at `rootfs` (which may be consumed). */
  writeSlot(slot: Slot, rootfs: string, meta: SlotMeta, signal?: AbortSignal): Promise<void>;
  /** What `slot` holds; undefined when it is empty or was not written by the agent. */
  readSlot(slot: Slot): Promise<SlotMeta | undefined>;
  /**
   * The boot environment's own objection to the system booted from `slot`; undefined = none.
   * LinuxSlots: none (the os manager's health checks judge the real system). SimSlots: a simulated
   * image that boots but fails its post-boot health check (a test hook).
   */
  slotHealth(slot: Slot): Promise<string | undefined>;
  /**
   * Delta updates (docs/delta-updates.md): the image (block device or image file) of `slot` that a
   * new slot image is rebuilt from; undefined when the slot has none.
   */
  slotImage(slot: Slot): Promise<string | undefined>;
  /**
   * Delta updates: writes `slot` from a whole ext4 slot image that `fill` writes into the path it is
   * given, under the same power-cut rules as writeSlot (the slot reads as empty until its record is
   * written). `meta` gets the image's /usr/lib/edgeplane/image.json text (undefined when it has
   * none) and returns the slot record, or throws to refuse the image.
   */
  writeSlotImage(slot: Slot, fill: (path: string) => Promise<void>, meta: (imageJson: string | undefined) => SlotMeta, signal?: AbortSignal): Promise<void>;
}
