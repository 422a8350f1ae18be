import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VirtVmSpec } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { VirshError } from '../../device/linux/virsh-session.js';
import { SimDevice } from '../../device/sim/sim-device.js';
import { readNoCloudSeed } from '../../seed/nocloud-seed.js';
import type { ManagerContext } from '../manager.js';
import { baseVolume, domainXml, readDomainXml } from './domain-xml.js';
import { VirtManager } from './virt.manager.js';

const URI = 'test:///default';
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function setup() {
  const root = await mkdtemp(join(tmpdir(), 'virt-mgr-'));
  const device = new SimDevice({ root });
  cleanup.push(async () => {
    await device.close();
    await rm(root, { recursive: true, force: true });
  });
  const events: string[] = [];
  const ctx: ManagerContext = {
    device,
    dataDir: root,
    log: pino({ level: 'silent' }),
    emitEvent: (_t, reason) => events.push(reason),
    reportProgress: () => undefined,
    signal: new AbortController().signal,
  };
  return { device, manager: new VirtManager(device, { uri: URI, dataDir: root, shutdownTimeoutMs: 2000 }), ctx, events, lv: device.libvirt(URI) };
}

const vm = (over: Partial<VirtVmSpec> = {}): VirtVmSpec => ({
  domain: 'ep-c1-w1',
  uuid: '3f2a9c1e-0000-4000-8000-000000000001',
  cluster: 'c1',
  vm: 'w1',
  hostName: 'c1-w1',
  vcpus: 2,
  memoryMiB: 2048,
  diskGiB: 20,
  network: 'default',
  storagePool: 'default-pool',
  image: { image: 'reg/os:1', digest: `sha256:${'a'.repeat(64)}` },
  seed: { userData: '#cloud-config\nedgeplane:\n  server: http://x\n  token: t\n', metaData: 'instance-id: i-1\nlocal-hostname: c1-w1\n' },
  ...over,
});

describe('virsh session (libvirt test driver)', () => {
  it('keeps state within one session, frames output and reports errors per command', async () => {
    const { lv } = await setup();
    await lv.run('vol-create-as', 'default-pool', 'a.qcow2', '1G', '--format', 'qcow2');
    expect(await lv.poolVolumes('default-pool')).toContain('a.qcow2');
    await expect(lv.run('dominfo', 'nope')).rejects.toBeInstanceOf(VirshError);
    // The session is still usable after an error, and concurrent calls are queued in order.
    const [a, b] = await Promise.all([lv.run('list', '--all', '--name'), lv.run('net-list', '--all')]);
    expect(a.trim()).toBe('test');
    expect(b).toContain('default');
    const inv = await lv.inventory();
    expect(inv).toMatchObject({ uri: URI, cpus: 16, simulated: true });
    expect(inv.pools[0]).toMatchObject({ name: 'default-pool', capacityBytes: 100 * 1024 ** 3 });
  });
});

describe('virt manager', () => {
  it('creates, resizes and removes a domain with its volume and seed', async () => {
    const { manager, ctx, events, lv } = await setup();
    await manager.prepare({ vms: [vm()] });
    await manager.apply({ vms: [vm()] }, ctx);
    const xml = await lv.dumpxml('ep-c1-w1');
    expect(readDomainXml(xml)).toMatchObject({ vcpus: 2, memoryMiB: 2048, pool: 'default-pool', network: 'default', volume: 'ep-c1-w1.qcow2' });
    expect((await lv.domainInfo('ep-c1-w1'))?.state).toBe('running');
    const seed = await readNoCloudSeed(readDomainXml(xml).seedIso!);
    expect(seed.userData).toContain('token: t');
    const status = await manager.status();
    expect(status.domains).toEqual([expect.objectContaining({ domain: 'ep-c1-w1', cluster: 'c1', vm: 'w1', state: 'running', vcpus: 2 })]);

    await manager.apply({ vms: [vm({ vcpus: 4, memoryMiB: 4096 })] }, ctx);
    expect(readDomainXml(await lv.dumpxml('ep-c1-w1'))).toMatchObject({ vcpus: 4, memoryMiB: 4096 });
    expect((await lv.domainInfo('ep-c1-w1'))?.state).toBe('running');

    // A spec without the virt key leaves the VMs alone; `vms: []` removes them.
    await manager.apply(undefined, ctx);
    expect(await lv.names('list', '--all', '--name')).toContain('ep-c1-w1');
    await manager.apply({ vms: [] }, ctx);
    expect(await lv.names('list', '--all', '--name')).toEqual(['test']);
    expect(await lv.poolVolumes('default-pool')).toEqual([]);
    expect(events).toEqual(['VmCreated', 'VmResized', 'VmDeleted']);
  });

  it('writes a base volume again when the agent has no record of finishing it (a write cut short)', async () => {
    const { manager, ctx, lv } = await setup();
    // Left by an upload that stopped half-way: smaller than the disk, and never recorded as done.
    await lv.run('vol-create-as', 'default-pool', baseVolume(vm()), '1G', '--format', 'raw');
    await manager.apply({ vms: [vm()] }, ctx);
    expect(await lv.volumeBytes('default-pool', baseVolume(vm()))).toBe(4 * 1024 ** 3);
    // Recorded now: the next pass keeps it as it is.
    await manager.apply({ vms: [vm()] }, ctx);
    expect(await lv.volumeBytes('default-pool', baseVolume(vm()))).toBe(4 * 1024 ** 3);
    await manager.apply({ vms: [] }, ctx);
    expect(await lv.poolVolumes('default-pool')).toEqual([]);
  });

  it("an OS upgrade of an existing VM's cluster (a new image digest) leaves its disk and base alone: the guest upgrades its own slots", async () => {
    const { manager, ctx, lv, events } = await setup();
    await manager.apply({ vms: [vm()] }, ctx);
    const upgraded = vm({ image: { image: 'reg/os:2', digest: `sha256:${'b'.repeat(64)}` } });
    await manager.apply({ vms: [upgraded] }, ctx);
    // No base of the new image is written for a VM that has its disk; the domain was not recreated.
    expect((await lv.poolVolumes('default-pool')).sort()).toEqual([baseVolume(vm()), 'ep-c1-w1.qcow2'].sort());
    expect(events).toEqual(['VmCreated']);
    // A VM created after the upgrade starts from the new image.
    const w2 = vm({ ...upgraded, domain: 'ep-c1-w2', vm: 'w2', hostName: 'c1-w2', uuid: '3f2a9c1e-0000-4000-8000-000000000002' });
    await manager.apply({ vms: [upgraded, w2] }, ctx);
    expect(await lv.poolVolumes('default-pool')).toContain(baseVolume(upgraded));
    await manager.apply({ vms: [] }, ctx);
    expect(await lv.poolVolumes('default-pool')).toEqual([]);
  });

  it('starts a VM again whose domain shut off by itself (a guest reboot is a power cycle), and only VMs of the applied spec', async () => {
    const { manager, ctx, lv, events } = await setup();
    const spec = { vms: [vm()] };
    // Nothing applied yet: nothing to restart, and the spec is not converged.
    expect(await manager.drifted()).toBe(false);
    expect(await manager.converged(spec)).toBe(false);
    await manager.apply(spec, ctx);
    expect(await manager.converged(spec)).toBe(true);
    expect(await manager.drifted()).toBe(false);
    // The guest rebooted: with on_reboot=destroy its QEMU ended and the domain is shut off.
    expect(domainXml({ vm: vm(), type: 'qemu', seed: { volume: 's' } })).toContain('<on_reboot>destroy</on_reboot>');
    await lv.run('destroy', 'ep-c1-w1');
    expect(await manager.drifted()).toBe(true);
    expect(await manager.converged(spec)).toBe(false);
    await manager.apply(spec, ctx);
    expect((await lv.domainInfo('ep-c1-w1'))?.state).toBe('running');
    expect(events).toEqual(['VmCreated', 'VmStarted']);
    expect(await manager.drifted()).toBe(false);
    // A domain the spec does not want (another tool's, here libvirt's own "test") is never started by it.
    await lv.run('destroy', 'test');
    expect(await manager.drifted()).toBe(false);
    expect(await manager.converged(spec)).toBe(true);
    // A changed spec is never "converged" on the strength of running domains alone.
    expect(await manager.converged({ vms: [vm({ vcpus: 4 })] })).toBe(false);
  });

  it('refuses an unknown network in prepare', async () => {
    const { manager } = await setup();
    await expect(manager.prepare({ vms: [vm({ network: 'nope' })] })).rejects.toThrow(/network "nope"/);
  });
});

describe('domain XML', () => {
  it('attaches the seed as a read-only volume of the pool on a real hypervisor and as a file on the test driver', () => {
    const onQemu = domainXml({ vm: vm(), type: 'qemu', seed: { volume: 'ep-c1-w1-seed.iso' } });
    expect(onQemu).toContain("<os firmware='efi'>");
    expect(readDomainXml(onQemu)).toMatchObject({ pool: 'default-pool', volume: 'ep-c1-w1.qcow2', seedVolume: 'ep-c1-w1-seed.iso', seedIso: undefined });
    const onTest = domainXml({ vm: vm(), type: 'test', seed: { file: '/data/virt/seeds/ep-c1-w1.iso' } });
    expect(readDomainXml(onTest)).toMatchObject({ volume: 'ep-c1-w1.qcow2', seedIso: '/data/virt/seeds/ep-c1-w1.iso', seedVolume: undefined });
  });

  it('names one base volume per image digest', () => {
    expect(baseVolume(vm())).toBe(`ep-base-${'a'.repeat(16)}.img`);
    expect(baseVolume(vm({ image: { image: 'reg/os:2', digest: `sha256:${'b'.repeat(64)}` } }))).not.toBe(baseVolume(vm()));
  });
});
