import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Libvirt, readDomainXml, readNoCloudSeed } from '@edgeplane/agent';
import type { Fleet } from '@edgeplane/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { register, TestDevice, waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, startSimFleet } from '../support/sim-fleet.js';

/**
 * Virtualized Edge end to end: a real server, a real OCI registry, and simulated appliances whose agents
 * drive libvirt's REAL test driver (test:///default) through one long-lived virsh session. For each
 * running domain the simulator boots a guest agent from the domain's NoCloud seed ISO; those agents
 * register with the per-cluster token and become the cluster's (simulated Kubernetes) nodes.
 */
describe.each(DIALECTS)('virtualized cluster on a libvirt test-driver appliance (%s)', (dialect) => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  let lv: Libvirt;
  let appliance = '';
  let offlineAppliance = '';
  let digest = '';
  // Simulated Kubernetes clusters live in one registry per process: a name per dialect.
  const C = dialect === 'sqlite' ? 'vc' : 'vp';

  const api = (method: string, path: string, body?: unknown) => t.api(method, path, body);
  const cluster = async (name: string) => (await api('GET', `/api/v1/clusters/${name}`)).body;
  const epDomains = async () => (await lv.names('list', '--all', '--name')).filter((d) => d.startsWith('ep-'));
  const epVolumes = async () => {
    const out: string[] = [];
    for (const pool of ['default', 'pool2']) for (const v of await lv.poolVolumes(pool)) if (v.startsWith('ep-')) out.push(`${pool}/${v}`);
    return out;
  };
  const vm = (name: string, role: string, network: string, storagePool: string, over: Record<string, unknown> = {}) => ({
    name,
    role,
    vcpus: 2,
    memoryMiB: 512,
    diskGiB: 10,
    network,
    storagePool,
    ...over,
  });
  const VMS = [
    vm('cp1', 'control-plane', 'default', 'default'),
    vm('w1', 'worker', 'net2', 'pool2', { labels: { zone: 'b' } }),
    vm('w2', 'worker', 'default', 'pool2'),
  ];
  const spec = (vms: unknown[], over: Record<string, unknown> = {}) => ({
    type: 'virtualized',
    profile: { name: 'vm-profile', revision: 1 },
    appliance,
    vms,
    ...over,
  });
  const waitRunning = (name: string, nodes: number) =>
    waitFor(async () => {
      const c = await cluster(name);
      return c.status?.phase === 'Running' && c.status.observedGeneration === c.metadata.generation && c.status.nodes.length === nodes && c;
    }, 60_000);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-virt-'));
    [t, registry] = await Promise.all([testServer(dialect), startRegistry()]);
    digest = await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    const sim = await startSimFleet(t, { sites: 1, appliances: 2, dataDir: join(dir, 'sim') });
    fleet = sim.fleet;
    [appliance, offlineAppliance] = sim.appliances;
    lv = fleet.appliances[0].device.libvirt(fleet.appliances[0].libvirtUri);
    // A second network and storage pool on the appliance, so the VMs spread over both of each.
    await writeFile(
      join(dir, 'net2.xml'),
      "<network><name>net2</name><bridge name='virbr9'/><forward mode='nat'/><ip address='192.168.150.1' netmask='255.255.255.0'/></network>",
    );
    await lv.run('net-define', join(dir, 'net2.xml'));
    await lv.run('net-start', 'net2');
    await lv.run('pool-define-as', 'pool2', 'dir', '--target', '/pool2');
    await lv.run('pool-start', 'pool2');
    await waitFor(async () => {
      const status = (await api('GET', `/api/v1/edgehosts/${appliance}`)).body.status;
      const inv = status.agent?.managers?.virt?.libvirt;
      return (
        status.connectivity === 'online' &&
        inv?.domains.length === 0 &&
        inv?.networks.some((n: any) => n.name === 'net2') &&
        inv.pools.some((p: any) => p.name === 'pool2')
      );
    }, 20_000);
    await createK3sProfile(t, registry, 'vm-profile');
  }, 90_000);
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('lists appliances with their libvirt capacity', async () => {
    const host = (await api('GET', `/api/v1/edgehosts/${appliance}`)).body;
    expect(host.status.agent.capabilities).toContain('libvirt');
    expect(host.status.agent.managers.virt.libvirt).toMatchObject({ uri: fleet!.appliances[0].libvirtUri, cpus: 16, memoryMiB: 32768, simulated: true });
  });

  it.each([
    ['an unknown network', [vm('cp1', 'control-plane', 'nope', 'default')], 'VmNetworkNotFound'],
    ['an unknown pool', [vm('cp1', 'control-plane', 'default', 'nope')], 'VmStoragePoolNotFound'],
    ['too much memory', [vm('cp1', 'control-plane', 'default', 'default', { memoryMiB: 40960 })], 'ApplianceCapacityExceeded'],
    ['too many vCPUs', [vm('cp1', 'control-plane', 'default', 'default', { vcpus: 65 })], 'ApplianceCapacityExceeded'],
    ['too big a disk', [vm('cp1', 'control-plane', 'default', 'default', { diskGiB: 500 })], 'ApplianceCapacityExceeded'],
    ['duplicate VM names', [vm('cp1', 'control-plane', 'default', 'default'), vm('cp1', 'worker', 'default', 'default')], 'DuplicateVmName'],
    ['an even number of control planes', [vm('a', 'control-plane', 'default', 'default'), vm('b', 'control-plane', 'default', 'default')], 'EvenControlPlanes'],
  ])('refuses %s with a code and creates nothing', async (_what, vms, code) => {
    const r = await api('POST', '/api/v1/clusters', { metadata: { name: 'refused' }, spec: spec(vms) });
    expect(r.body.error?.code, JSON.stringify(r.body)).toBe(code);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect((await api('GET', '/api/v1/clusters/refused')).status).toBe(404);
    expect((await api('GET', '/api/v1/registrationtokens/vm-refused')).status).toBe(404);
    expect((await api('GET', '/api/v1/edgehosts?labelSelector=edgeplane.io/vm-cluster=refused')).body.items).toEqual([]);
    expect(await epDomains()).toEqual([]);
  });

  it('refuses an offline appliance', async () => {
    await fleet!.appliances[1].agent.stop();
    await waitFor(async () => (await api('GET', `/api/v1/edgehosts/${offlineAppliance}`)).body.status.connectivity === 'offline', 20_000);
    const r = await api('POST', '/api/v1/clusters', { metadata: { name: 'refused' }, spec: spec(VMS, { appliance: offlineAppliance }) });
    expect(r.body.error?.code, JSON.stringify(r.body)).toBe('ApplianceOffline');
    expect(r.status).toBe(409);
    expect((await api('GET', '/api/v1/clusters/refused')).status).toBe(404);
  });

  it('creates 3 VMs on different pools and networks, registers them and reaches Running; scales, resizes and deletes', async () => {
    const created = await api('POST', '/api/v1/clusters', { metadata: { name: C }, spec: spec(VMS) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    let running = await waitRunning(C, 3);
    expect(running.status.nodes.map((n: any) => n.host).sort()).toEqual([`${C}-cp1`, `${C}-w1`, `${C}-w2`]);
    for (const n of running.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digest });

    // Every domain's XML, as libvirt holds it, has what was asked for.
    for (const v of VMS) {
      const facts = readDomainXml(await lv.dumpxml(`ep-${C}-${v.name}`));
      expect(facts).toMatchObject({ vcpus: v.vcpus, memoryMiB: v.memoryMiB, pool: v.storagePool, network: v.network, volume: `ep-${C}-${v.name}.qcow2` });
      const xml = await fetch(`${t.url}/api/v1/clusters/${C}/vms/${v.name}/domain.xml`, { headers: { authorization: `Bearer ${t.admin}` } });
      expect(xml.status).toBe(200);
      expect(await xml.text()).toContain(`<source network='${v.network}'/>`);
    }
    // The VMs registered through their seed with the cluster token, approved without an operator.
    const hosts = (await api('GET', `/api/v1/edgehosts?labelSelector=edgeplane.io/vm-cluster=${C}`)).body.items;
    expect(hosts.map((h: any) => [h.metadata.name, h.status.registeredVia, h.status.registrationToken]).sort()).toEqual([
      [`${C}-cp1`, 'token', `vm-${C}`],
      [`${C}-w1`, 'token', `vm-${C}`],
      [`${C}-w2`, 'token', `vm-${C}`],
    ]);
    await waitFor(
      async () => (await api('GET', `/api/v1/edgehosts?labelSelector=edgeplane.io/vm-cluster=${C}`)).body.items.every((h: any) => h.status.state === 'in-use'),
      10_000,
    );
    expect(hosts.find((h: any) => h.metadata.name === `${C}-w1`).spec.kubernetes.nodeLabels).toMatchObject({ zone: 'b' });
    // The seed carries the cluster token; any other device presenting it is refused.
    const seed = await readNoCloudSeed(readDomainXml(await lv.dumpxml(`ep-${C}-w2`)).seedIso!);
    const vmToken = /token: "?([^"\s]+)"?/.exec(seed.userData)![1];
    const stranger = await TestDevice.create();
    const refused = await register(t.url, await stranger.registerBody(vmToken));
    expect(refused.body.error?.code).toBe('DeviceNotPreRegistered');
    const vms = (await api('GET', `/api/v1/clusters/${C}/vms`)).body.items;
    expect(vms.map((v: any) => [v.name, v.state])).toEqual([
      ['cp1', 'running'],
      ['w1', 'running'],
      ['w2', 'running'],
    ]);

    // Scale to 4 and back to 3.
    const four = [...VMS, vm('w3', 'worker', 'net2', 'default')];
    expect((await api('PATCH', `/api/v1/clusters/${C}`, { spec: { vms: four } })).status).toBe(200);
    running = await waitRunning(C, 4);
    expect(await epDomains()).toContain(`ep-${C}-w3`);
    expect((await api('PATCH', `/api/v1/clusters/${C}`, { spec: { vms: VMS } })).status).toBe(200);
    await waitFor(async () => !(await epDomains()).includes(`ep-${C}-w3`), 20_000);
    expect(await epVolumes()).not.toContain(`default-pool/ep-${C}-w3.qcow2`);
    expect((await api('GET', `/api/v1/edgehosts/${C}-w3`)).status).toBe(404);
    await waitRunning(C, 3);

    // Resize a worker: shut down, redefine, start; it comes back Ready.
    const resized = VMS.map((v) => (v.name === 'w1' ? { ...v, vcpus: 3, memoryMiB: 768 } : v));
    expect((await api('PATCH', `/api/v1/clusters/${C}`, { spec: { vms: resized } })).status).toBe(200);
    await waitFor(async () => {
      const f = readDomainXml(await lv.dumpxml(`ep-${C}-w1`));
      return f.vcpus === 3 && f.memoryMiB === 768 && (await lv.domainInfo(`ep-${C}-w1`))?.state === 'running';
    }, 30_000);
    await waitRunning(C, 3);
    // What a VM's domain was made with cannot change in place.
    const moved = await api('PATCH', `/api/v1/clusters/${C}`, { spec: { vms: resized.map((v) => (v.name === 'w2' ? { ...v, network: 'net2' } : v)) } });
    expect(moved.body.error?.code).toBe('InvalidState');

    // The CLI: VMs, a domain's XML, and appliances with their capacity in `get hosts -o wide`.
    const env = { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'cli.yaml') };
    const [list, xml, wide] = await Promise.all([cli(['vm', 'list', C], env), cli(['vm', 'xml', C, 'w1'], env), cli(['get', 'hosts', '-o', 'wide'], env)]);
    expect(list.code, list.out).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`w1\\s+worker\\s+3\\s+768Mi\\s+10Gi\\s+net2\\s+pool2\\s+ep-${C}-w1\\s+running\\s+${C}-w1\\s+in-use/online`));
    expect(xml.code, xml.out).toBe(0);
    expect(xml.stdout).toContain(`<source pool='pool2' volume='ep-${C}-w1.qcow2'/>`);
    expect(wide.code, wide.out).toBe(0);
    expect(wide.stdout).toMatch(new RegExp(`${appliance}.*vcpu 7/16 mem 1792/32768MiB`));

    // Delete: every domain and volume goes, and so do the VM hosts and the token.
    expect((await api('DELETE', `/api/v1/clusters/${C}`)).status).toBe(200);
    await waitFor(async () => (await epDomains()).length === 0 && (await epVolumes()).length === 0, 30_000);
    expect((await api('GET', `/api/v1/edgehosts?labelSelector=edgeplane.io/vm-cluster=${C}`)).body.items).toEqual([]);
    expect((await api('GET', `/api/v1/registrationtokens/vm-${C}`)).status).toBe(404);
  }, 180_000);
});
