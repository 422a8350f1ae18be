import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManagerFailure } from '../managers/manager.js';
import { OsManager } from '../managers/os/os.manager.js';
import { slotBoot } from './device.js';
import { LinuxDevice } from './linux/linux-device.js';
import { SimDevice } from './sim/sim-device.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('a device without A/B slots says so', () => {
  let root: string;
  let dataDir: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'ep-unmanaged-'));
    dataDir = await mkdtemp(join(tmpdir(), 'ep-unmanaged-data-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it("LinuxDevice and SimDevice answer boot: 'unmanaged' when told the host keeps its own OS, and have slots otherwise", () => {
    expect(new LinuxDevice({ root, slots: 'unmanaged' }).boot).toBe('unmanaged');
    expect(new SimDevice({ root, os: 'unmanaged' }).boot).toBe('unmanaged');
    expect(slotBoot(new LinuxDevice({ root, slots: 'unmanaged' }))).toBeUndefined();
    expect(slotBoot(new LinuxDevice({ root }))).toBeDefined();
    expect(slotBoot(new SimDevice({ root }))).toBeDefined();
  });

  it('a simulated unmanaged host reports the OS its own files name, reboots without a boot loader, and the os manager refuses images', async () => {
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/os-release'), 'NAME="Ubuntu"\nVERSION_ID="24.04"\n');
    const device = new SimDevice({ root, os: 'unmanaged' });
    expect((await device.inventory()).os).toMatchObject({ name: 'Ubuntu (simulated)', version: '24.04' });

    let rebooted = false;
    device.onReboot(() => {
      rebooted = true;
    });
    await device.reboot();
    await new Promise((r) => setImmediate(r));
    expect(rebooted).toBe(true);

    const os = new OsManager(device, { dataDir });
    expect(await os.status()).toMatchObject({ message: 'this device has no A/B slots' });
    expect(await os.converged(undefined)).toBe(true);
    expect(await os.converged({ image: 'registry.example/os', digest: DIGEST })).toBe(false);
    const ctx = {
      device,
      dataDir,
      log: pino({ level: 'silent' }),
      emitEvent: () => undefined,
      reportProgress: async () => undefined,
      signal: new AbortController().signal,
    };
    const failure = await os.prepare({ image: 'registry.example/os', digest: DIGEST }, ctx as never).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ManagerFailure);
    expect(failure).toMatchObject({ detail: { retryable: false, message: expect.stringMatching(/no A\/B slots/) } });
  });
});
