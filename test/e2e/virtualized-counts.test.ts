import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '@edgeplane/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, startSimFleet } from '../support/sim-fleet.js';

/**
 * A virtualized cluster's nodes are its VMs: `get clusters` counts them, `wait` shows "n/m nodes
 * Ready" against the VM count, `plan` has a row for each VM (one being added joins), and the VM
 * hosts are at their appliance's site.
 */
describe.each(DIALECTS)('virtualized cluster counts on %s', (dialect) => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  let appliance = '';
  let site = '';
  // Simulated Kubernetes clusters live in one registry per process: a name per dialect.
  const C = dialect === 'sqlite' ? 'vcount-s' : 'vcount-p';
  const env = () => ({ EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') });
  const vm = (name: string, role: string) => ({ name, role, vcpus: 1, memoryMiB: 512, diskGiB: 10, network: 'default', storagePool: 'default' });
  const VMS = [vm('cp1', 'control-plane'), vm('w1', 'worker')];
  const manifest = (vms: unknown[]) => ({
    apiVersion: 'edgeplane.io/v1',
    kind: 'Cluster',
    metadata: { name: C },
    spec: { type: 'virtualized', profile: { name: 'vm-profile', revision: 1 }, appliance, vms },
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-virt-counts-'));
    [t, registry] = await Promise.all([testServer(dialect), startRegistry()]);
    await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    const sim = await startSimFleet(t, { sites: 1, appliances: 1, dataDir: join(dir, 'sim') });
    fleet = sim.fleet;
    appliance = sim.appliances[0];
    await waitFor(async () => {
      const h = (await t.api('GET', `/api/v1/edgehosts/${appliance}`)).body;
      site = h.spec.site;
      return h.status.connectivity === 'online' && h.status.agent?.managers?.virt?.libvirt;
    }, 20_000);
    await createK3sProfile(t, registry, 'vm-profile');
  }, 90_000);
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('counts VMs as nodes in get and wait, and puts the VM hosts at the appliance site', async () => {
    expect(site).toBeTruthy();
    const created = await t.api('POST', '/api/v1/clusters', manifest(VMS));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.status.desiredNodes).toBe(2);

    const get = await cli(['get', 'clusters'], env());
    expect(get.code, get.out).toBe(0);
    const header = get.stdout.split('\n')[0].split(/\s{2,}/);
    const row = get.stdout
      .split('\n')
      .find((l) => l.startsWith(C))!
      .split(/\s{2,}/);
    expect(row[header.indexOf('NODES')]).toBe('2');

    const w = await cli(['wait', 'cluster', C, '--for', 'phase=Running', '--timeout', '90s'], env());
    expect(w.code, w.out).toBe(0);
    expect(w.out).not.toMatch(/\d+\/0 nodes/);
    expect(w.out).toMatch(/\/2 nodes Ready/);

    const hosts = (await t.api('GET', `/api/v1/edgehosts?labelSelector=edgeplane.io/vm-cluster=${C}`)).body.items;
    expect(hosts.map((h: { metadata: { name: string } }) => h.metadata.name).sort()).toEqual([`${C}-cp1`, `${C}-w1`]);
    for (const h of hosts) expect(h.spec.site).toBe(site);
    // And so a site's field selector finds them.
    const atSite = (await t.api('GET', `/api/v1/edgehosts?fieldSelector=spec.site=${site}`)).body.items.map(
      (h: { metadata: { name: string } }) => h.metadata.name,
    );
    expect(atSite).toEqual(expect.arrayContaining([appliance, `${C}-cp1`, `${C}-w1`]));
  }, 120_000);

  it('plans a row per VM, the added one joining', async () => {
    const file = join(dir, 'more.yaml');
    await writeFile(file, JSON.stringify(manifest([...VMS, vm('w2', 'worker')])));
    const plan = await t.api('POST', `/api/v1/clusters/${C}/plan`, { spec: manifest([...VMS, vm('w2', 'worker')]).spec });
    expect(plan.status, JSON.stringify(plan.body)).toBe(200);
    expect(plan.body.nodes.map((n: { host: string; change: string }) => [n.host, n.change])).toEqual([
      [`${C}-cp1`, 'no-op'],
      [`${C}-w1`, 'no-op'],
      [`${C}-w2`, 'repave'],
    ]);
    expect(plan.body.nodes.find((n: { host: string }) => n.host === `${C}-w2`).joins).toBe(true);
    const r = await cli(['plan', 'cluster', C, '-f', file], env());
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${C}-w2\\s+worker\\s+repave`));
    expect(r.stdout).toMatch(new RegExp(`${C}-cp1\\s+control-plane`));
    // Removing a VM plans its host's removal.
    const fewer = await t.api('POST', `/api/v1/clusters/${C}/plan`, { spec: manifest([VMS[0]]).spec });
    expect(fewer.body.removed).toEqual([`${C}-w1`]);
  });
});
