import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Inventory } from '@edgeplane/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SIM_DEVICE_UID_FILE, SimDevice } from './sim-device.js';

describe('SimDevice', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'sim-device-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('keeps its uid across restarts, under its root', async () => {
    const a = new SimDevice({ root });
    const [u1, u2] = await Promise.all([a.deviceUid(), a.deviceUid()]);
    expect(u1).toBe(u2);
    expect(u1).toMatch(/^[0-9a-f-]{36}$/);
    expect((await readFile(join(root, SIM_DEVICE_UID_FILE), 'utf8')).trim()).toBe(u1);
    expect(await new SimDevice({ root }).deviceUid()).toBe(u1);
  });

  it('reports a deterministic, valid, simulated inventory', async () => {
    const inv = await new SimDevice({ root, hostname: 'sim-a' }).inventory();
    expect(Inventory.parse(inv)).toEqual(inv);
    expect(inv.simulated).toBe(true);
    expect(inv.hostname).toBe('sim-a');
    expect(await new SimDevice({ root, hostname: 'sim-a' }).inventory()).toEqual(inv);
    const other = await new SimDevice({ root: await mkdtemp(join(tmpdir(), 'sim-device-')) }).inventory();
    expect(other.dmi.productUuid).not.toBe(inv.dmi.productUuid);
  });
});
