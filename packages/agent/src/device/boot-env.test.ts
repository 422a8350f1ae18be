import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OsManager } from '../managers/os/os.manager.js';
import { BOOT_VARS, GrubEnv } from './boot-env.js';
import { runTool } from './run-tool.js';
import { SimDevice } from './sim/sim-device.js';
import type { SimSlots } from './sim/sim-slots.js';

/** The simulated Edgeplane OS device's slots (a SimDevice made without os: 'unmanaged'). */
const slots = (device: SimDevice) => device.boot as SimSlots;

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ep-bootenv-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function fakeSlot(device: SimDevice, slot: 'A' | 'B', digest: string) {
  const dir = join(root, 'staging', slot);
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(join(dir, 'etc/os-release'), 'VERSION_ID=1\n');
  await slots(device).writeSlot(slot, dir, { digest, image: 'x', writtenAt: new Date().toISOString() });
}

describe('boot environment', () => {
  it('reads and writes a real grubenv with grub-editenv', async () => {
    const env = new GrubEnv(join(root, 'boot/grub/grubenv'));
    expect(await env.list()).toEqual({});
    await env.set({ active_slot: 'A', next_slot: 'B' });
    expect((await readFile(env.file)).length).toBe(1024); // a GRUB environment block
    expect(await env.bootState()).toEqual({ activeSlot: 'A', nextSlot: 'B' });
    await env.unset('next_slot');
    expect((await runTool('grub-editenv', [env.file, 'list'])).stdout).toBe('active_slot=A\n');
  });

  it('simulated boot loader: next_slot boots once; a slot without an OS falls back to active_slot', async () => {
    const device = new SimDevice({ root });
    await fakeSlot(device, 'B', `sha256:${'b'.repeat(64)}`);
    await slots(device).grubenv.set({ active_slot: 'A', next_slot: 'B' });
    await device.reboot();
    expect(await slots(device).bootedSlot()).toBe('B');
    expect((await slots(device).grubenv.bootState()).nextSlot).toBeUndefined();
    await device.reboot();
    expect(await slots(device).bootedSlot()).toBe('A');

    await rm(join(root, 'slots/B'), { recursive: true });
    await slots(device).grubenv.set({ next_slot: 'B' });
    await device.reboot();
    expect(await slots(device).bootedSlot()).toBe('A');
  });

  it('os manager reports a trial slot that never came up as FellBack', async () => {
    const device = new SimDevice({ root });
    const digest = `sha256:${'c'.repeat(64)}`;
    await slots(device).grubenv.set({ [BOOT_VARS.active]: 'A', [BOOT_VARS.next]: 'B', [BOOT_VARS.trial]: 'B' });
    await device.reboot(); // slot B is empty: the machine comes back on A
    const events: string[] = [];
    const manager = new OsManager(device, { dataDir: root });
    const ctx = {
      device,
      dataDir: root,
      log: pino({ level: 'silent' }),
      emitEvent: (_t: string, r: string) => void events.push(r),
      reportProgress: () => {},
      signal: new AbortController().signal,
    };
    const desired = { image: 'r.local/os:2', digest };
    expect(await manager.converged(desired)).toBe(false);
    // The run stops there (not retryable): later managers must not act on a spec for an image that did not boot.
    await expect(manager.apply(desired, ctx, { os: desired })).rejects.toMatchObject({ detail: { component: 'os', retryable: false } });
    expect(await manager.converged(desired)).toBe(false);
    expect(await manager.status()).toMatchObject({
      phase: 'FellBack',
      bootedSlot: 'A',
      activeSlot: 'A',
      message: 'fell back to slot A: slot B did not boot; the boot loader started slot A',
    });
    expect(events).toEqual(['FellBack']);
    expect((await slots(device).grubenv.bootState()).trySlot).toBeUndefined();
  });

  it('grub.cfg template implements the same variables', async () => {
    const cfg = await readFile(new URL('../../boot/grub.cfg.template', import.meta.url), 'utf8');
    for (const v of Object.values(BOOT_VARS)) expect(cfg).toContain(v);
    expect(cfg).toContain('save_env --file @GRUBENV@ next_slot');
    for (const slot of ['A', 'B', 'recovery']) expect(cfg).toContain(`edgeplane.slot=${slot}`);
  });
});
