/**
 * SIMULATION of A/B slot storage and of the boot loader for SimDevice. Slots are directories under
 * the sandbox root (`<root>/slots/<slot>/rootfs` + `slot.json`); the boot environment is a REAL
 * grubenv file (`<root>/boot/grub/grubenv`) handled with the real grub-editenv, and the simulated
 * boot loader follows the same rules as boot/grub.cfg.template. The slot the simulated machine
 * "booted" is recorded in `<root>/var/lib/edgeplane-sim/booted-slot`.
 */
import { cp, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Slot } from '@edgeplane/protocol';
import { readJsonFile, writeFileAtomic } from '../../atomic-file.js';
import { slotKernelSigned } from '../../oci/kernel-signature.js';
import { BOOT_VARS, GrubEnv, type SlotBoot, type SlotMeta } from '../boot-env.js';
import { RootedFiles } from '../files.js';
import { isSquashfs } from '../linux/squashfs.js';
import { runTool } from '../run-tool.js';
import { secureBootEnforced } from '../secure-boot.js';

export const SIM_BOOTED_SLOT_FILE = 'var/lib/edgeplane-sim/booted-slot';
export const GRUBENV_PATH = 'boot/grub/grubenv';

export class SimSlots implements SlotBoot {
  readonly grubenv: GrubEnv;

  constructor(
    private readonly root: string,
    /** The simulated machine's hostname (for the simulateBootFailure hook's host list). */
    private readonly hostname: () => Promise<string> = async () => '',
  ) {
    this.grubenv = new GrubEnv(join(root, GRUBENV_PATH));
  }

  slotDir(slot: Slot): string {
    return join(this.root, 'slots', slot);
  }

  async bootedSlot(): Promise<Slot> {
    const text = await readFile(join(this.root, SIM_BOOTED_SLOT_FILE), 'utf8').catch(() => '');
    const slot = text.trim();
    // A fresh simulated device was "installed" into slot A.
    return slot === 'B' || slot === 'recovery' ? slot : 'A';
  }

  async writeSlot(slot: Slot, rootfs: string, meta: SlotMeta): Promise<void> {
    const dir = this.slotDir(slot);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await rename(rootfs, join(dir, 'rootfs')).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EXDEV') throw err;
      await cp(rootfs, join(dir, 'rootfs'), { recursive: true });
    });
    // slot.json last: a slot without it counts as empty (and does not "boot").
    await writeFileAtomic(join(dir, 'slot.json'), `${JSON.stringify(meta, null, 2)}\n`, 0o644);
  }

  /** The slot's image (ext4 or squashfs), kept beside its tree when the slot was written by a delta update. */
  async slotImage(slot: Slot): Promise<string | undefined> {
    const image = join(this.slotDir(slot), 'slot.img');
    return (await stat(image).catch(() => undefined)) ? image : undefined;
  }

  /**
   * A delta update: the rebuilt slot image is kept as slot.img (a later delta seeds from it) and its
   * tree is unpacked with `debugfs rdump` (real e2fsprogs, no mount; `unsquashfs` for a squashfs
   * slot image) into rootfs, which the simulated machine boots; slot.json last, as in writeSlot.
   */
  async writeSlotImage(
    slot: Slot,
    fill: (path: string) => Promise<void>,
    meta: (imageJson: string | undefined) => SlotMeta,
    signal?: AbortSignal,
  ): Promise<void> {
    const dir = this.slotDir(slot);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, 'rootfs'), { recursive: true });
    const image = join(dir, 'slot.img.partial');
    await fill(image);
    if (await isSquashfs(image)) {
      await rm(join(dir, 'rootfs'), { recursive: true, force: true });
      await runTool('unsquashfs', ['-no-progress', '-quiet', '-d', join(dir, 'rootfs'), image], { timeoutMs: 10 * 60_000, signal });
    } else {
      await runTool('e2fsck', ['-fn', image], { timeoutMs: 10 * 60_000, signal });
      await runTool('debugfs', ['-R', `rdump / ${join(dir, 'rootfs')}`, image], { timeoutMs: 10 * 60_000, signal });
    }
    const info = await readFile(join(dir, 'rootfs', 'usr', 'lib', 'edgeplane', 'image.json'), 'utf8').catch(() => undefined);
    const record = meta(info);
    await rename(image, join(dir, 'slot.img'));
    await writeFileAtomic(join(dir, 'slot.json'), `${JSON.stringify(record, null, 2)}\n`, 0o644);
  }

  async readSlot(slot: Slot): Promise<SlotMeta | undefined> {
    const meta = (await readJsonFile(join(this.slotDir(slot), 'slot.json')).catch(() => undefined)) as SlotMeta | undefined;
    return meta?.digest ? meta : undefined;
  }

  /**
   * The simulated boot loader, same rules as grub.cfg: a pending next_slot boots once and is cleared
   * first; otherwise active_slot. A chosen slot with no OS in it does not come up, and the
   * (simulated) watchdog reset boots again, which now picks active_slot. Returns the booted slot.
   */
  async boot(): Promise<Slot> {
    const env = await this.grubenv.bootState();
    let slot: Slot = env.activeSlot;
    if (env.nextSlot) {
      await this.grubenv.set({ [BOOT_VARS.next]: '' });
      slot = env.nextSlot;
      if (!(await this.bootable(slot))) slot = env.activeSlot;
    }
    await writeFileAtomic(join(this.root, SIM_BOOTED_SLOT_FILE), `${slot}\n`, 0o644);
    return slot;
  }

  private async bootable(slot: Slot): Promise<boolean> {
    const release = await stat(join(this.slotDir(slot), 'rootfs', 'etc', 'os-release')).catch(() => undefined);
    if (release?.isFile() !== true || (await this.readSlot(slot)) === undefined) return false;
    // SIMULATION HOOK (SimDevice only, ignored by LinuxDevice): an image whose
    // /usr/lib/edgeplane/image.json says "simulateBootFailure": true (or a list of hostnames that
    // includes this machine's) "panics" on boot, so tests can ship an image that fails on
    // real-looking terms; the simulated watchdog then boots active_slot.
    const info = (await readJsonFile(join(this.slotDir(slot), 'rootfs', 'usr', 'lib', 'edgeplane', 'image.json')).catch(() => undefined)) as
      | { simulateBootFailure?: unknown }
      | undefined;
    const hook = info?.simulateBootFailure;
    if (hook === true) return false;
    // As the firmware chain does under Secure Boot (shim, then GRUB's shim_lock verifier): a kernel
    // without a signature does not start. The sandbox's efivar says whether Secure Boot is on.
    if ((await secureBootEnforced(new RootedFiles(this.root))) && (await slotKernelSigned(join(this.slotDir(slot), 'rootfs'))) === false) return false;
    return !(Array.isArray(hook) && hook.includes(await this.hostname()));
  }

  /**
   * SIMULATION HOOK: an image whose /usr/lib/edgeplane/image.json says "simulateUnhealthy": true (or
   * a list of hostnames that includes this machine's) boots, but fails its post-boot health check.
   */
  async slotHealth(slot: Slot): Promise<string | undefined> {
    const info = (await readJsonFile(join(this.slotDir(slot), 'rootfs', 'usr', 'lib', 'edgeplane', 'image.json')).catch(() => undefined)) as
      | { simulateUnhealthy?: unknown }
      | undefined;
    const hook = info?.simulateUnhealthy;
    const unhealthy = hook === true || (Array.isArray(hook) && hook.includes(await this.hostname()));
    return unhealthy ? 'the image failed its health check (simulated: image.json simulateUnhealthy)' : undefined;
  }

  /** os-release of the booted slot, if it holds an OS image. */
  async bootedOsRelease(): Promise<string | undefined> {
    return readFile(join(this.slotDir(await this.bootedSlot()), 'rootfs', 'etc', 'os-release'), 'utf8').catch(() => undefined);
  }
}
