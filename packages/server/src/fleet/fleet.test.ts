import { FleetSummary } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, type TestStore, testStore } from '../../../../test/support/db.js';
import { insertHosts } from '../../../../test/support/seed-hosts.js';
import { insertClusters, insertProfileRevision, insertSites } from '../../../../test/support/seed-sites.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { openStore, type Store } from '../store/db.js';
import { migrateToLatest } from '../store/migrations.js';
import { fleetSummary } from './fleet.service.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

describe.each(DIALECTS)('fleet summary (%s)', (dialect) => {
  describe('counted from the store', () => {
    let store: TestStore;
    let s: Store;
    beforeAll(async () => {
      store = await testStore(dialect);
      s = openStore({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
      await migrateToLatest(s.db);
      await insertSites(store, [
        { name: 'berlin', latitude: 52.5, longitude: 13.4, region: 'eu', displayName: 'Berlin shop' },
        { name: 'paris', latitude: 48.9, longitude: 2.35, region: 'eu' },
        { name: 'tokyo', latitude: 35.7, longitude: 139.7, region: 'ap' },
        { name: 'lima', region: 'sa' },
      ]);
      await insertHosts(store, [
        { name: 'b1', site: 'berlin', connectivity: 'online' },
        { name: 'b2', site: 'berlin', connectivity: 'online', state: 'in-use' },
        { name: 'b3', site: 'berlin', state: 'pending-approval' }, // not in service: says nothing about health
        { name: 'p1', site: 'paris', connectivity: 'online', state: 'in-use' },
        { name: 'p2', site: 'paris', state: 'in-use' },
        { name: 't1', site: 'tokyo' },
        { name: 'o1', site: 'oslo', connectivity: 'online' }, // a site name without a Site object
        { name: 'n1', connectivity: 'online' }, // at no site
      ]);
      await insertProfileRevision(store, 'shops', 1, 'registry.example/edge/os:1.0.0', D1);
      await insertClusters(store, [
        // No spec.site: at its first node's site (berlin).
        {
          name: 'c-berlin',
          nodes: ['b2'],
          phase: 'Running',
          upgradeState: 'Rolling',
          nodeVersions: [{ host: 'b2', osImageDigest: D1, kubernetesVersion: 'v1.30.4+k3s1' }],
        },
        {
          name: 'c-paris',
          site: 'paris',
          nodes: ['p1', 'p2'],
          phase: 'Degraded',
          nodeVersions: [
            { host: 'p1', osImageDigest: D1, kubernetesVersion: 'v1.30.4+k3s1' },
            { host: 'p2', osImageDigest: D2, kubernetesVersion: 'v1.31.1+k3s1' },
          ],
        },
        { name: 'c-new', site: 'lima' },
      ]);
    });
    afterAll(async () => {
      await s?.close();
      await store?.cleanup();
    });

    it('gives every site its health, counts and position, and counts hosts at no site apart', async () => {
      const sum = FleetSummary.parse(await fleetSummary(s.db, true));
      const by = new Map(sum.sites.map((x) => [x.name, x]));
      expect([...by.keys()]).toEqual(['berlin', 'lima', 'oslo', 'paris', 'tokyo']);
      expect(by.get('berlin')).toMatchObject({
        defined: true,
        displayName: 'Berlin shop',
        region: 'eu',
        latitude: 52.5,
        longitude: 13.4,
        health: 'upgrading',
        hosts: { total: 3, byConnectivity: { online: 2, offline: 1 }, byState: { ready: 1, 'in-use': 1, 'pending-approval': 1 } },
        clusters: { total: 1, byPhase: { Running: 1 }, upgrading: 1 },
      });
      expect(by.get('berlin')?.lastChange).toMatch(/^\d{4}-/);
      expect(by.get('paris')).toMatchObject({ health: 'degraded', clusters: { total: 1, byPhase: { Degraded: 1 }, upgrading: 0 } });
      expect(by.get('tokyo')).toMatchObject({ health: 'offline', hosts: { total: 1, byConnectivity: { offline: 1 } } });
      expect(by.get('oslo')).toMatchObject({ defined: false, health: 'online', hosts: { total: 1 } });
      expect(by.get('oslo')?.latitude).toBeUndefined();
      // A cluster without phase yet is Pending; a site without hosts in service is empty.
      expect(by.get('lima')).toMatchObject({ health: 'empty', clusters: { byPhase: { Pending: 1 } } });
      expect(sum.unassigned.hosts).toEqual({ total: 1, byConnectivity: { online: 1 }, byState: { ready: 1 } });
    });

    it('counts the nodes on each OS image and Kubernetes version, naming images by the revision that pins them', async () => {
      const sum = await fleetSummary(s.db, true);
      expect(sum.versions?.os).toEqual([
        { key: D1, label: 'registry.example/edge/os:1.0.0', nodes: 2, clusters: 2, clusterNames: ['c-berlin', 'c-paris'] },
        { key: D2, label: D2, nodes: 1, clusters: 1, clusterNames: ['c-paris'] },
      ]);
      expect(sum.versions?.kubernetes).toEqual([
        { key: 'v1.30.4+k3s1', label: 'v1.30.4+k3s1', nodes: 2, clusters: 2, clusterNames: ['c-berlin', 'c-paris'] },
        { key: 'v1.31.1+k3s1', label: 'v1.31.1+k3s1', nodes: 1, clusters: 1, clusterNames: ['c-paris'] },
      ]);
    });

    it('leaves clusters and versions out for a caller who may not list clusters, and health follows the hosts', async () => {
      const sum = await fleetSummary(s.db, false);
      expect(sum.versions).toBeUndefined();
      const berlin = sum.sites.find((x) => x.name === 'berlin')!;
      expect(berlin.clusters).toBeUndefined();
      expect(berlin.health).toBe('online');
    });
  });

  describe('GET /api/v1/fleet/summary', () => {
    let t: TestServer;
    beforeAll(async () => {
      t = await testServer(dialect);
      await insertSites(t.store, [{ name: 'rome', latitude: 41.9, longitude: 12.5 }]);
      await insertHosts(t.store, [{ name: 'r1', site: 'rome', connectivity: 'offline' }]);
    });
    afterAll(async () => t?.close());

    it('answers the summary in one request, described by its OpenAPI entry', async () => {
      const r = await t.api('GET', '/api/v1/fleet/summary');
      expect(r.status).toBe(200);
      expect(FleetSummary.parse(r.body).sites).toEqual([
        expect.objectContaining({
          name: 'rome',
          health: 'offline',
          latitude: 41.9,
          hosts: { total: 1, byConnectivity: { offline: 1 }, byState: { ready: 1 } },
        }),
      ]);
      const doc = (await t.api('GET', '/api/v1/openapi.json')).body;
      expect(doc.paths['/api/v1/fleet/summary'].get.operationId).toBe('fleetSummary');
    });

    it('is read-only and needs a caller: no token, a wrong token and writes are refused, nothing changes', async () => {
      const before = (await t.api('GET', '/api/v1/fleet/summary')).body;
      const anon = await fetch(`${t.url}/api/v1/fleet/summary`);
      expect(anon.status).toBe(401);
      expect((await anon.json()).error.code).toBe('Unauthenticated');
      expect((await t.api('GET', '/api/v1/fleet/summary', undefined, { token: 'ep_not-a-token' })).status).toBe(401);
      for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) expect((await t.api(m, '/api/v1/fleet/summary', {})).status).toBe(404);
      expect((await t.api('GET', '/api/v1/fleet/summary')).body).toEqual(before);
      expect((await t.api('GET', '/api/v1/sites')).body.items.map((x: { metadata: { name: string } }) => x.metadata.name)).toEqual(['rome']);
    });

    it('answers a viewer (who may list sites, hosts and clusters) the same as an admin', async () => {
      expect((await t.api('POST', '/api/v1/users', { metadata: { name: 'vera' }, spec: { role: 'viewer' } })).status).toBe(201);
      const token = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vera-tok' }, spec: { user: 'vera' } })).body.status.token;
      const asViewer = await t.api('GET', '/api/v1/fleet/summary', undefined, { token });
      expect(asViewer.status).toBe(200);
      expect(asViewer.body).toEqual((await t.api('GET', '/api/v1/fleet/summary')).body);
    });
  });
});
