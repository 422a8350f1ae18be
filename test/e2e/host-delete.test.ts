import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simKubernetes } from '@edgeplane/agent';
import type { Fleet } from '@edgeplane/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, startSimFleet } from '../support/sim-fleet.js';

/**
 * Deleting hosts that clusters depend on, end to end: a real server, a simulated fleet (real
 * agents, simulated Kubernetes) and a simulated appliance running a virtualized cluster's VMs.
 */
describe.each(DIALECTS)('delete host guards and delete --force (%s)', (dialect) => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  let env: Record<string, string>;
  let appliance = '';
  let nodes: string[] = [];
  // Simulated Kubernetes clusters and libvirt domains live once per process: names per dialect.
  const NATIVE = `shop-${dialect}`;
  const VIRT = `store-${dialect}`;

  const api = (method: string, path: string, body?: unknown) => t.api(method, path, body);
  const cluster = async (name: string) => (await api('GET', `/api/v1/clusters/${name}`)).body;
  const host = async (name: string) => (await api('GET', `/api/v1/edgehosts/${name}`)).body;
  const running = (name: string, count: number) =>
    waitFor(async () => {
      const c = await cluster(name);
      if (c.status?.phase === 'Failed') throw new Error(`cluster ${name} failed: ${JSON.stringify(c.status)}`);
      return c.status?.phase === 'Running' && c.status.observedGeneration === c.metadata.generation && c.status.nodes.length === count && c;
    }, 60_000);
  /** What a refused delete must leave as it was: hosts (name, uid, state, cluster annotation) and cluster specs. */
  const snapshot = async () => {
    const hosts = (await api('GET', '/api/v1/edgehosts?limit=1000')).body.items.map((h: any) => ({
      name: h.metadata.name,
      uid: h.metadata.uid,
      state: h.status.state,
      annotations: h.metadata.annotations,
      generation: h.metadata.generation,
    }));
    const clusters = (await api('GET', '/api/v1/clusters')).body.items.map((c: any) => ({
      name: c.metadata.name,
      generation: c.metadata.generation,
      spec: c.spec,
    }));
    return { hosts, clusters };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-host-delete-'));
    [t, registry] = await Promise.all([testServer(dialect), startRegistry()]);
    env = { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') };
    await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    const sim = await startSimFleet(t, { sites: 6, appliances: 1, dataDir: join(dir, 'sim'), ready: true });
    fleet = sim.fleet;
    nodes = sim.hosts;
    appliance = sim.appliances[0];
    await waitFor(async () => (await host(appliance)).status.agent?.managers?.virt?.libvirt?.pools?.length > 0, 20_000);
    await createK3sProfile(t, registry, 'k3s');
    const native = await api('POST', '/api/v1/clusters', {
      metadata: { name: NATIVE },
      spec: {
        profile: { name: 'k3s', revision: 1 },
        nodes: [
          { host: nodes[0], role: 'control-plane' },
          { host: nodes[1], role: 'worker' },
          { host: nodes[2], role: 'worker' },
        ],
      },
    });
    expect(native.status, JSON.stringify(native.body)).toBe(201);
    const vm = (name: string, role: string) => ({ name, role, vcpus: 1, memoryMiB: 512, diskGiB: 10, network: 'default', storagePool: 'default' });
    const virt = await api('POST', '/api/v1/clusters', {
      metadata: { name: VIRT },
      spec: { type: 'virtualized', profile: { name: 'k3s', revision: 1 }, appliance, vms: [vm('cp1', 'control-plane'), vm('w1', 'worker')] },
    });
    expect(virt.status, JSON.stringify(virt.body)).toBe(201);
    await Promise.all([running(NATIVE, 3), running(VIRT, 2)]);
  }, 120_000);
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    // Retried: on PostgreSQL a file still appeared under the simulated appliance's dir after the fleet
    // stopped (ENOTEMPTY in two CI runs; its writer is not found yet).
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });

  it('refuses deleting or rejecting a cluster node, a VM node or an appliance with VMs, naming the cluster; nothing changes', async () => {
    const before = await snapshot();
    const vmNode = `${VIRT}-w1`;
    const refusals: [string, string, unknown][] = [
      ['DELETE', `/api/v1/edgehosts/${nodes[1]}`, { code: 'HostInCluster', details: { host: nodes[1], cluster: NATIVE } }],
      ['POST', `/api/v1/edgehosts/${nodes[1]}/reject`, { code: 'HostInCluster', details: { cluster: NATIVE } }],
      ['DELETE', `/api/v1/edgehosts/${vmNode}`, { code: 'HostInCluster', details: { cluster: VIRT, vm: 'w1' } }],
      ['POST', `/api/v1/edgehosts/${vmNode}/reject`, { code: 'HostInCluster', details: { cluster: VIRT, vm: 'w1' } }],
      ['DELETE', `/api/v1/edgehosts/${appliance}`, { code: 'HostInCluster', details: { clusters: [VIRT] } }],
      ['POST', `/api/v1/edgehosts/${appliance}/reject`, { code: 'HostInCluster', details: { clusters: [VIRT] } }],
      // Force where it cannot be done safely: the appliance (its VMs), the node that initialized the cluster.
      ['DELETE', `/api/v1/edgehosts/${appliance}?force=true`, { code: 'HostRemovalRefused', details: { reason: 'appliance', clusters: [VIRT] } }],
      ['DELETE', `/api/v1/edgehosts/${nodes[0]}?force=true`, { code: 'HostRemovalRefused', details: { reason: 'init-node', cluster: NATIVE } }],
      ['DELETE', `/api/v1/edgehosts/${VIRT}-cp1?force=true`, { code: 'HostRemovalRefused', details: { reason: 'init-node', cluster: VIRT } }],
      ['DELETE', `/api/v1/edgehosts/${nodes[1]}?force=yes`, { code: 'ValidationFailed' }],
    ];
    for (const [method, path, error] of refusals) {
      const r = await api(method, path);
      expect(r.body.error, `${method} ${path}: ${JSON.stringify(r.body)}`).toMatchObject(error as object);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    const refused = await api('DELETE', `/api/v1/edgehosts/${nodes[1]}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain(`cluster "${NATIVE}"`);
    expect(refused.body.error.message).toContain('--force');
    const byCli = await cli(['delete', 'host', appliance], env);
    expect(byCli.code).toBe(1);
    expect(byCli.out).toMatch(new RegExp(`HostInCluster.*${VIRT}.*w1`));
    expect(await snapshot()).toEqual(before);
    expect((await cluster(NATIVE)).status.phase).toBe('Running');
    expect((await cluster(VIRT)).status.phase).toBe('Running');
  });

  it('delete --force takes a worker out of its 3-node cluster: Running with 2 nodes, its Node gone, the device back as a new host', async () => {
    const worker = nodes[2];
    const old = await host(worker);
    const endpoint = (await cluster(NATIVE)).status.controlPlaneEndpoint;
    expect(simKubernetes.inspect(endpoint)?.nodes.map((n) => n.name)).toContain(worker);

    const r = await cli(['delete', 'host', worker, '--force', '--timeout', '90s'], env);
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain(`edgehosts/${worker} is leaving cluster ${NATIVE}:`);
    expect(r.stdout).toMatch(/drains node .*removes it from Kubernetes/);
    expect(r.stdout).toContain(`edgehosts/${worker} left cluster ${NATIVE} and was deleted`);
    expect(r.stdout).toMatch(new RegExp(`clusters/${NATIVE}: Running, 2/2 node\\(s\\)`));
    expect(r.stdout).toMatch(new RegExp(`edgehosts/${worker} deleted\\n$`));

    const c = await running(NATIVE, 2);
    expect(c.spec.nodes.map((n: any) => n.host)).toEqual([nodes[0], nodes[1]]);
    expect(c.status.conditions.find((x: any) => x.type === 'Ready')?.status).toBe('True');
    const k = simKubernetes.inspect(endpoint)!;
    expect(k.nodes.map((n) => n.name).sort()).toEqual([nodes[0], nodes[1]].sort());
    const reasons = (await api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${worker}&limit=500`)).body.items.map(
      (e: any) => e.spec.reason,
    );
    expect(reasons).toEqual(expect.arrayContaining(['RemovalRequested', 'NodeDrained', 'NodeReset', 'Deleted']));
    // The audit log says the delete was forced.
    const audit = (await api('GET', `/api/v1/audit?action=edgehost.delete&target=edgehosts/${worker}`)).body.items;
    expect(audit).toHaveLength(1);
    expect(audit[0].details).toMatchObject({ force: true, removal: 'accepted' });

    // The device registers again with its token: a new host (new uid), ready because the token auto-approves, in no cluster.
    const back = await waitFor(async () => {
      const h = await api('GET', `/api/v1/edgehosts/${worker}`);
      return h.status === 200 && h.body.metadata.uid !== old.metadata.uid && h.body.status.connectivity === 'online' && h.body;
    }, 30_000);
    expect(back.status.state).toBe('ready');
    expect(back.status.deviceUid).toBe(old.status.deviceUid);
    expect(back.metadata.annotations ?? {}).toEqual({});
    expect(back.spec.kubernetes).toBeUndefined();
  }, 120_000);

  it('delete --force of a control-plane node removes its Kubernetes node and its etcd member', async () => {
    const HA = `ha-${dialect}`;
    const cps = nodes.slice(3, 6);
    const r = await api('POST', '/api/v1/clusters', {
      metadata: { name: HA },
      spec: { profile: { name: 'k3s', revision: 1 }, allowEvenControlPlanes: true, nodes: cps.map((h) => ({ host: h, role: 'control-plane' })) },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const endpoint = (await running(HA, 3)).status.controlPlaneEndpoint;
    expect(simKubernetes.inspect(endpoint)?.etcdMembers?.sort()).toEqual([...cps].sort());

    const removal = await api('DELETE', `/api/v1/edgehosts/${cps[2]}?force=true`);
    expect(removal.status, JSON.stringify(removal.body)).toBe(202);
    expect(removal.body.steps.join('\n')).toContain('and its etcd member');
    const c = await running(HA, 2);
    expect(c.spec.nodes.map((n: any) => n.host)).toEqual(cps.slice(0, 2));
    const k = await waitFor(() => {
      const s = simKubernetes.inspect(endpoint);
      return s && s.nodes.length === 2 && s;
    }, 30_000);
    expect(k.etcdMembers?.sort()).toEqual(cps.slice(0, 2).sort());
    expect(k.nodes.map((n) => n.name).sort()).toEqual(cps.slice(0, 2).sort());
    await waitFor(async () => {
      const h = await api('GET', `/api/v1/edgehosts/${cps[2]}`);
      return h.status === 404 || (h.body.metadata.annotations ?? {})['edgeplane.io/removal-requested'] === undefined;
    }, 30_000);
  }, 120_000);

  it('delete --force of a VM node removes its VM from the cluster; the cluster runs on the rest', async () => {
    const vmNode = `${VIRT}-w1`;
    const r = await api('DELETE', `/api/v1/edgehosts/${vmNode}?force=true`);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body).toMatchObject({ kind: 'HostRemoval', host: vmNode, cluster: VIRT, vm: 'w1' });
    await waitFor(async () => (await api('GET', `/api/v1/edgehosts/${vmNode}`)).status === 404, 30_000);
    const c = await running(VIRT, 1);
    expect(c.spec.vms.map((v: any) => v.name)).toEqual(['cp1']);
  }, 90_000);
});
