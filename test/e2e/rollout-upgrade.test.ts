import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * Rollouts through the real cluster upgrade path: a Rollout moves 2 single-node k3s clusters on
 * simulated hosts (real agents, SimDevice A/B slots, real OCI registry) from profile revision 1 to 2,
 * canary first. No simulated upgrader here: the cluster controller does the upgrade.
 */
describe('rollout through real cluster upgrades', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  let hosts: string[] = [];
  const digests: Record<string, string> = {};

  const profile = (image: string, version = 'v1.30.4+k3s1') => ({
    metadata: { name: 'shop' },
    spec: { layers: { os: { image: `${registry.host}/edge/os:${image}` }, kubernetes: { distribution: 'k3s', version } } },
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-rollout-'));
    [t, registry] = await Promise.all([testServer('sqlite', { rolloutIntervalMs: 200 }), startRegistry()]);
    for (const version of ['1.0.0', '2.0.0']) {
      digests[version] = await pushOsImage(registry, join(dir, 'layout'), version);
    }
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: t.url,
      token,
      sites: 2,
      dataDir: join(dir, 'sim'),
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 20, backoffCapMs: 300 },
    });
    await fleet.waitUntilConnected(20_000);
    const items = await waitFor(async () => {
      const list = (await t.api('GET', '/api/v1/edgehosts')).body.items;
      return list.filter((h: any) => h.status.connectivity === 'online' && h.status.state === 'ready').length === 2 && list;
    }, 20_000);
    hosts = items.map((h: any) => h.metadata.name).sort();
  }, 60_000);
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('upgrades the canary cluster, then the other, and ends Succeeded', async () => {
    expect((await t.api('POST', '/api/v1/clusterprofiles', profile('1.0.0'))).status).toBe(201);
    for (const [i, h] of hosts.entries()) {
      // A site with no maintenance windows: changes may happen at any time.
      expect((await t.api('POST', '/api/v1/sites', { metadata: { name: `shop-${i}` }, spec: { timezone: 'Europe/Berlin' } })).status).toBe(201);
      const r = await t.api('POST', '/api/v1/clusters', {
        metadata: { name: `shop-${i}`, labels: { fleet: 'shops' } },
        spec: { profile: { name: 'shop', revision: 1 }, site: `shop-${i}`, nodes: [{ host: h, role: 'control-plane' }] },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    const converged = (name: string, revision: number) =>
      waitFor(async () => {
        const c = (await t.api('GET', `/api/v1/clusters/${name}`)).body;
        return c.status?.phase === 'Running' && c.status.observedGeneration === c.metadata.generation && c.status.profileRevision === revision && c;
      }, 60_000);
    await Promise.all([converged('shop-0', 1), converged('shop-1', 1)]);

    const put = await t.api('PUT', '/api/v1/clusterprofiles/shop', profile('2.0.0'));
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const rev2 = (await t.api('GET', '/api/v1/clusterprofiles/shop')).body.status.latestRevision;
    const created = await t.api('POST', '/api/v1/rollouts', {
      metadata: { name: 'to-rev2' },
      spec: {
        targets: { selector: 'fleet=shops' },
        profile: { name: 'shop', revision: rev2 },
        strategy: { batches: [{ limit: 1 }, { limit: '100%' }], clusterTimeout: '5m' },
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const done = await waitFor(async () => {
      const r = (await t.api('GET', '/api/v1/rollouts/to-rev2')).body;
      if (r.status.phase === 'Failed') throw new Error(JSON.stringify(r.status));
      return r.status.phase === 'Succeeded' && r;
    }, 120_000);
    expect(done.status.counts).toMatchObject({ total: 2, succeeded: 2 });
    for (const name of ['shop-0', 'shop-1']) {
      const c = await converged(name, rev2);
      expect(c.status.upgrade).toMatchObject({ state: 'Succeeded', toRevision: rev2 });
      for (const n of c.status.nodes) expect(n.osImageDigest).toBe(digests['2.0.0']);
    }
    // Canary first: the second cluster started only once the first had converged.
    const [first, second] = ['shop-0', 'shop-1'].map((n) => done.status.clusters.find((c: any) => c.name === n));
    expect(first).toMatchObject({ batch: 0, state: 'succeeded' });
    expect(second).toMatchObject({ batch: 1, state: 'succeeded' });
    expect(Date.parse(second.startedAt)).toBeGreaterThanOrEqual(Date.parse(first.finishedAt));
  }, 180_000);

  it('fails each cluster at once, with the reason, when the revision asks for a Kubernetes version its OS image does not carry; specs stay', async () => {
    // Revision 3: the next Kubernetes version on the same image: an update the API refuses.
    const put = await t.api('PUT', '/api/v1/clusterprofiles/shop', profile('2.0.0', 'v1.31.1+k3s1'));
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const rev3 = (await t.api('GET', '/api/v1/clusterprofiles/shop')).body.status.latestRevision;
    const before = await Promise.all(['shop-0', 'shop-1'].map(async (n) => (await t.api('GET', `/api/v1/clusters/${n}`)).body));
    const created = await t.api('POST', '/api/v1/rollouts', {
      metadata: { name: 'to-rev3' },
      spec: {
        targets: { selector: 'fleet=shops' },
        profile: { name: 'shop', revision: rev3 },
        strategy: { batches: [{ limit: '100%' }], clusterTimeout: '5m' },
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const done = await waitFor(async () => {
      const r = (await t.api('GET', '/api/v1/rollouts/to-rev3')).body;
      return ['Failed', 'Succeeded'].includes(r.status.phase) && r;
    }, 30_000);
    expect(done.status.phase).toBe('Failed');
    for (const c of done.status.clusters) {
      expect(c).toMatchObject({ state: 'failed', reason: 'UpgradeRefused' });
      expect(c.message).toMatch(/^KubernetesVersionNotInImage: /);
    }
    // Nothing was asked of the clusters: same spec, same generation, still on the previous revision.
    for (const b of before) {
      const now = (await t.api('GET', `/api/v1/clusters/${b.metadata.name}`)).body;
      expect(now.spec).toEqual(b.spec);
      expect(now.metadata.generation).toBe(b.metadata.generation);
    }
  }, 60_000);
});
