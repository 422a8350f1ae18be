import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OsSpec, Slot } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushOciLayout, startRegistry, type TestRegistry } from '../../../../../test/support/registry.js';
import { writeFileAtomic } from '../../atomic-file.js';
import { BOOT_VARS, type SlotMeta } from '../../device/boot-env.js';
import { SimDevice } from '../../device/sim/sim-device.js';
import { SimSlots } from '../../device/sim/sim-slots.js';
import { writeOsImage } from '../../oci/index.js';
import type { ManagerContext } from '../manager.js';
import { OsManager } from './os.manager.js';

/**
 * Crash safety of A/B updates: a power cut at every step of staging an image and of
 * switching to it. After each cut the simulated machine boots (the boot loader follows the real
 * grubenv), a fresh os manager starts on the same disk and converges, and no boot ever started a
 * slot that did not hold a complete, verified image.
 */
class PowerCut extends Error {}

type Cut = 'after-clear' | 'after-rootfs' | 'after-meta' | 'after-next-slot';

/** SimSlots whose slot write (and boot-variable write) loses power after the named step. */
class FaultySlots extends SimSlots {
  cut?: Cut;
  /** Set by a cut: the machine is off until the next boot (the manager may wrap the error). */
  poweredOff = false;
  readonly boots: { slot: Slot; meta?: SlotMeta }[] = [];

  async writeSlot(slot: Slot, rootfs: string, meta: SlotMeta): Promise<void> {
    const dir = this.slotDir(slot);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    this.maybeCut('after-clear');
    await rename(rootfs, join(dir, 'rootfs'));
    this.maybeCut('after-rootfs');
    await writeFileAtomic(join(dir, 'slot.json'), `${JSON.stringify(meta, null, 2)}\n`, 0o644);
    this.maybeCut('after-meta');
  }

  async boot(): Promise<Slot> {
    const slot = await super.boot();
    this.boots.push({ slot, meta: await this.readSlot(slot) });
    return slot;
  }

  maybeCut(step: Cut): void {
    if (this.cut === step) {
      this.cut = undefined;
      this.poweredOff = true;
      throw new PowerCut(`power cut ${step}`);
    }
  }
}

let work: string;
let registry: TestRegistry;
const images: Record<string, OsSpec> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ep-oscrash-'));
  registry = await startRegistry();
  for (const version of ['1.0.0', '2.0.0']) {
    await writeOsImage({ layoutDir: join(work, 'layout'), tag: version, name: 'Edgeplane OS', version });
    const digest = await pushOciLayout(join(work, 'layout'), `${registry.host}/edge/os:${version}`);
    images[version] = { image: `${registry.host}/edge/os:${version}`, digest, insecure: true };
  }
});
afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

async function machine() {
  const root = await mkdtemp(join(work, 'dev-'));
  const device = new SimDevice({ root, hostname: 'crash' });
  const slots = new FaultySlots(root);
  Object.defineProperty(device, 'boot', { value: slots });
  // The "agent process": a manager run that ends with the reboot (or the power cut).
  const run = async (desired: OsSpec) => {
    const abort = new AbortController();
    const reboot = device.reboot.bind(device);
    device.reboot = async () => {
      await reboot();
      abort.abort(new Error('rebooted'));
    };
    const manager = new OsManager(device, { dataDir: root, rebootTimeoutMs: 5_000 });
    const ctx: ManagerContext = {
      device,
      dataDir: root,
      log: pino({ level: 'silent' }),
      emitEvent: () => {},
      reportProgress: () => {},
      signal: abort.signal,
    };
    try {
      if (await manager.converged(desired)) return true;
      await manager.prepare(desired, ctx);
      await manager.apply(desired, ctx, { os: desired });
      return manager.converged(desired);
    } catch (err) {
      if (slots.poweredOff) {
        slots.poweredOff = false;
        await slots.boot(); // the power comes back: the boot loader runs
      } else if (!abort.signal.aborted) throw err;
      return false;
    }
  };
  const converge = async (desired: OsSpec) => {
    for (let i = 0; i < 6; i++) if (await run(desired)) return;
    throw new Error(`did not converge to ${desired.digest}`);
  };
  return { device, slots, run, converge };
}

describe('power cut while writing or switching a slot', () => {
  const cuts: Cut[] = ['after-clear', 'after-rootfs', 'after-meta', 'after-next-slot'];

  it.each(cuts)(
    '%s: boots only verified images and converges to the new one',
    async (cut) => {
      const { device, slots, run, converge } = await machine();
      await converge(images['1.0.0']);
      const old = await slots.readSlot(await slots.bootedSlot());
      expect(old?.digest).toBe(images['1.0.0'].digest);
      slots.boots.length = 0;

      if (cut === 'after-next-slot') {
        // Cut right after the boot variables point at the new slot, before the reboot is requested.
        const set = slots.grubenv.set.bind(slots.grubenv);
        slots.grubenv.set = async (vars) => {
          await set(vars);
          if (vars[BOOT_VARS.next]) {
            slots.grubenv.set = set;
            slots.poweredOff = true;
            throw new PowerCut('power cut after-next-slot');
          }
        };
      } else slots.cut = cut;
      expect(await run(images['2.0.0'])).toBe(false);
      // The first boot after the cut: the old image, unless the new slot was complete and armed.
      expect(slots.boots[0].meta?.digest).toBe(cut === 'after-next-slot' ? images['2.0.0'].digest : images['1.0.0'].digest);

      await converge(images['2.0.0']);
      const booted = await slots.readSlot(await slots.bootedSlot());
      expect(booted?.digest).toBe(images['2.0.0'].digest);
      expect((await slots.grubenv.bootState()).activeSlot).toBe(await slots.bootedSlot());
      // Never a boot of a slot without a complete image (slot.json is written last, after verification).
      for (const b of slots.boots) expect([images['1.0.0'].digest, images['2.0.0'].digest]).toContain(b.meta?.digest);
      void device;
    },
    30_000,
  );
});
