import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FleetOptions, startFleet } from '@edgeplane/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { startSimFleet } from '../support/sim-fleet.js';

const VERSION = 'v1.30.4+k3s1';
type Fleet = Awaited<ReturnType<typeof startFleet>>;

/**
 * Failure recovery on the simulator (real agents, SimDevice slots, a real OCI registry): a host
 * whose trial boot of an image fell back takes it again on request (a re-created cluster, a
 * revision with fixed health checks), never on its own; a restarted simulator brings its nodes
 * back Ready and its cluster back to Running without an operator.
 */
describe.each(DIALECTS)('failure recovery on the simulator (%s)', (dialect) => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let fleetOptions: FleetOptions;
  let dir: string;
  let digest: string;
  let free: string[] = [];

  const get = async (path: string) => (await t.api('GET', path)).body;
  const cluster = (name: string) => get(`/api/v1/clusters/${name}`);
  const host = (name: string) => get(`/api/v1/edgehosts/${name}`);
  const hostEvents = async (name: string) =>
    (await get(`/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${name}`)).items.map((e: any) => e.spec.reason) as string[];
  const profile = (name: string, check: 'ok' | 'fail') => ({
    apiVersion: 'edgeplane.io/v1',
    kind: 'ClusterProfile',
    metadata: { name },
    spec: {
      layers: { os: { image: `${registry.host}/edge/os:1.0.0` }, kubernetes: { distribution: 'k3s', version: VERSION } },
      healthChecks: [{ name: 'app', type: 'command', command: ['edgeplane-sim-health', check], retries: 1, timeoutSeconds: 5 }],
    },
  });
  const create = async (name: string, profileName: string, revision: number, nodes: [string, string][]) => {
    const r = await t.api('POST', '/api/v1/clusters', {
      metadata: { name },
      spec: { type: 'native', profile: { name: profileName, revision }, nodes: nodes.map(([h, role]) => ({ host: h, role })) },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  };
  const phase = (name: string, want: string, timeout = 60_000) =>
    waitFor(async () => {
      const c = await cluster(name);
      return c.status?.phase === want && c;
    }, timeout);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-recovery-'));
    [t, registry] = await Promise.all([testServer(dialect), startRegistry()]);
    digest = await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    ({ fleet, options: fleetOptions, hosts: free } = await startSimFleet(t, { sites: 3, dataDir: join(dir, 'sim'), timeoutMs: 30_000, ready: true }));
  });
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('a host that fell back from an image takes it again in a re-created cluster and with a fixed revision, not by itself', async () => {
    const h = free[0];
    expect((await t.api('POST', '/api/v1/clusterprofiles', profile('shop', 'fail'))).status).toBe(201);
    await create('shop', 'shop', 1, [[h, 'control-plane']]);
    const failed = await phase('shop', 'Failed');
    expect(failed.status.nodes[0].message).toContain('health check "app" failed');
    const first = (await host(h)).status.agent.managers.os.failedImages;
    expect(first).toEqual([expect.objectContaining({ digest, reason: expect.stringContaining('health check "app" failed') })]);
    const rebooting = (await hostEvents(h)).filter((r) => r === 'Rebooting').length;

    // Deleted and re-created on the same host: a new attempt (the trial boot runs again), not the stale failure.
    expect((await t.api('DELETE', '/api/v1/clusters/shop')).status).toBeLessThan(300);
    // Its agent may still be coming back from the fallback reboot: a cluster takes only a connected host.
    await waitFor(async () => {
      const s = (await host(h)).status;
      return s.state === 'ready' && s.connectivity === 'online';
    }, 60_000);
    await create('shop', 'shop', 1, [[h, 'control-plane']]);
    await waitFor(async () => (await hostEvents(h)).filter((r) => r === 'Rebooting').length > rebooting, 60_000);
    expect(await hostEvents(h)).toContain('ImageRetried');
    const again = await waitFor(async () => {
      const f = (await host(h)).status.agent.managers.os.failedImages;
      return (await cluster('shop')).status?.phase === 'Failed' && f?.[0]?.at !== first[0].at && f;
    }, 60_000);
    expect(again[0].digest).toBe(digest);
    // It does not loop: with nothing asked, the image is not tried again.
    const trials = (await hostEvents(h)).filter((r) => r === 'Rebooting').length;
    await new Promise((r) => setTimeout(r, 3000));
    expect((await hostEvents(h)).filter((r) => r === 'Rebooting').length).toBe(trials);
    expect((await cluster('shop')).status.phase).toBe('Failed');

    // A revision that fixes the health check is a new attempt at the same digest: the cluster runs.
    expect((await t.api('PUT', '/api/v1/clusterprofiles/shop', profile('shop', 'ok'))).status).toBe(200);
    const r = await t.api(
      'PATCH',
      '/api/v1/clusters/shop',
      { spec: { profile: { name: 'shop', revision: 2 } } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const running = await phase('shop', 'Running');
    expect(running.status.nodes[0]).toMatchObject({ ready: true, osImageDigest: digest });
    expect((await host(h)).status.agent.managers.os.failedImages).toBeUndefined();
  }, 240_000);

  it('a restarted simulator brings its nodes back Ready and the cluster back to Running', async () => {
    const [cp, worker] = free.slice(1, 3);
    expect((await t.api('POST', '/api/v1/clusterprofiles', profile('plain', 'ok'))).status).toBe(201);
    await create('plain', 'plain', 1, [
      [cp, 'control-plane'],
      [worker, 'worker'],
    ]);
    await phase('plain', 'Running');

    await fleet!.stop();
    fleet = undefined;
    await waitFor(async () => (await host(cp)).status.connectivity === 'offline' && (await host(worker)).status.connectivity === 'offline', 30_000);
    // The simulated cluster's own record (what a restarted simulator loads): no kubelet of the ended process runs.
    type SimCluster = { nodes: Record<string, { ready: boolean; message?: string }> };
    const clusterFiles = join(fleetOptions.dataDir, 'sim-clusters');
    let file = '';
    for (const f of await readdir(clusterFiles)) {
      const c = JSON.parse(await readFile(join(clusterFiles, f), 'utf8')) as SimCluster;
      if (c.nodes[cp]) {
        file = join(clusterFiles, f);
        for (const n of Object.values(c.nodes)) Object.assign(n, { ready: false, message: 'simulated kubelet not running' });
        await writeFile(file, JSON.stringify(c));
      }
    }
    expect(file).not.toBe('');
    fleet = await startFleet(fleetOptions);
    await fleet.waitUntilConnected(30_000);

    // Every node's simulated kubelet posts Ready again, started by the restarted device as at boot.
    await waitFor(async () => {
      const nodes = Object.values((JSON.parse(await readFile(file, 'utf8')) as SimCluster).nodes);
      return nodes.length === 2 && nodes.every((n) => n.ready && n.message === 'kubelet is posting ready status');
    }, 60_000);
    const running = await waitFor(async () => {
      const c = await cluster('plain');
      const reported = await Promise.all([cp, worker].map(async (h) => (await host(h)).status.agent.managers.kubernetes));
      return c.status?.phase === 'Running' && reported.every((k) => k.ready && !/not running/.test(k.message ?? '')) && c;
    }, 60_000);
    for (const n of running.status.nodes) expect(n).toMatchObject({ ready: true, phase: 'Ready' });
  }, 240_000);
});
