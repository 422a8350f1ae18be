import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, startFleet } from '@edgeplane/sim';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli } from '../support/cli-process.js';
import { type TestStore, testStore } from '../support/db.js';
import { waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';
import { type Haproxy, startHaproxy } from '../support/haproxy.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';

/** offline-after, which is also the controller lease TTL. */
const TTL = 6;
/** docs/scale.md: the controllers move within offline-after and a third when their holder dies. */
const LEASE_MOVE_BOUND_MS = ((TTL * 4) / 3) * 1000;
const CLUSTERS = 5;
const SECRET = 'replicas-failover-secret';
/** Every replica seals and opens the clusters' join secrets with the same key (docs/scale.md). */
const SECRET_KEY = randomBytes(32).toString('base64');

type Event = { reason: string; message: string; count: number };

/**
 * Failover during rolling upgrades: three `edgeplane server` processes on one embedded PostgreSQL
 * behind HAProxy, 5 two-node native clusters on simulated hosts (real agents, SimDevice A/B slots,
 * a real OCI registry) moving to a new OS image. The replica holding the controller lease is killed
 * with SIGKILL while nodes are inside their upgrade windows (it also holds a share of the agents):
 * another replica takes the lease within the documented bound, every upgrade finishes, every node
 * took exactly one trial boot, and every step event is there exactly once. The loss of a replica
 * holding 100 agents (reconnect time, offline bound) is measured in replicas.test.ts.
 */
describe('controller failover during rolling upgrades behind HAProxy', () => {
  let store: TestStore;
  let registry: TestRegistry;
  let lb: Haproxy;
  let fleet: Fleet | undefined;
  let db: pg.Client;
  let admin: string;
  const replicas: { name: string; url: string; proc: CliProcess }[] = [];
  const digests: Record<string, string> = {};
  const dirs: string[] = [];
  const dir = (name: string) => {
    const d = mkdtempSync(join(tmpdir(), `edgeplane-failover-${name}-`));
    dirs.push(d);
    return d;
  };
  const api = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(`${lb.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const events = async (kind: string, name: string): Promise<Event[]> =>
    (await api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=${kind},involvedObject.name=${name}&limit=500`)).body.items.map((e: any) => ({
      reason: e.spec.reason,
      message: e.spec.message,
      count: e.status.count ?? 1,
    }));
  const reboots = async (host: string) => (await events('EdgeHost', host)).filter((e) => e.reason === 'Rebooting').reduce((n, e) => n + e.count, 0);
  const lease = async () =>
    (await db.query(`select holder, epoch from controller_leases where name = 'controllers'`)).rows[0] as { holder: string; epoch: number };
  const replicaUrl = async (id: string) => (await db.query('select url from replicas where id = $1', [id])).rows[0]?.url as string | undefined;
  const profile = (image: string) => ({
    metadata: { name: 'shop' },
    spec: { layers: { os: { image: `${registry.host}/edge/os:${image}` }, kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' } } },
  });
  const converged = (name: string, revision: number, timeout: number) =>
    waitFor(
      async () => {
        const c = (await api('GET', `/api/v1/clusters/${name}`)).body;
        if (c.status?.upgrade?.state === 'Failed') throw new Error(`${name}: ${JSON.stringify(c.status.upgrade)}`);
        return c.status?.phase === 'Running' && c.status.observedGeneration === c.metadata.generation && c.status.profileRevision === revision && c;
      },
      timeout,
      250,
    );
  const startReplica = async (name: string) => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = runCli(
      [
        'server',
        ...['--host', '127.0.0.1', '--port', String(port), '--data-dir', dir(name), '--database-url', store.databaseUrl!],
        ...['--offline-after', String(TTL), '--log-level', 'warn'],
      ],
      { EDGEPLANE_REPLICA_SECRET: SECRET, EDGEPLANE_SECRET_KEY: SECRET_KEY },
    );
    replicas.push({ name, url, proc });
    return proc;
  };

  beforeAll(async () => {
    [store, registry] = await Promise.all([testStore('postgres'), startRegistry()]);
    const layout = dir('layout');
    for (const version of ['1.0.0', '2.0.0']) digests[version] = await pushOsImage(registry, layout, version);
    // The first replica creates the store and its admin token (not a terminal: the banner names the file).
    const first = await startReplica('a');
    admin = readFileSync((await first.waitForOutput(/Its API token is in (\S+) \(mode 0600/))[1], 'utf8').trim();
    for (const name of ['b', 'c']) await startReplica(name);
    await Promise.all(replicas.map((r) => r.proc.waitForOutput(/Edgeplane server is running|edgeplane server listening/)));
    lb = await startHaproxy(
      replicas.map((r) => ({ name: r.name, url: r.url })),
      { checkIntervalMs: 500 },
    );
    db = new pg.Client({ connectionString: store.databaseUrl });
    await db.connect();
  }, 90_000);
  afterAll(async () => {
    await fleet?.stop();
    await lb?.stop();
    for (const r of replicas) await r.proc.stop('SIGKILL');
    await registry?.stop();
    await db?.end();
    await store?.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('moves the controllers within the lease bound and finishes every upgrade once per node', async () => {
    const token = (await api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: lb.url,
      token,
      sites: CLUSTERS,
      nodesPerSite: 2,
      dataDir: dir('sim'),
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 50, backoffCapMs: 1000 },
    });
    await fleet.waitUntilConnected(60_000);
    const items = await waitFor(async () => {
      const list = (await api('GET', '/api/v1/edgehosts?limit=500')).body.items;
      return list.filter((h: any) => h.status.connectivity === 'online' && h.status.state === 'ready').length === CLUSTERS * 2 && list;
    }, 30_000);
    const hosts: string[] = items.map((h: any) => h.metadata.name).sort();
    const clusters = Array.from({ length: CLUSTERS }, (_, i) => ({ name: `shop-${i}`, nodes: hosts.slice(2 * i, 2 * i + 2) }));

    expect((await api('POST', '/api/v1/clusterprofiles', profile('1.0.0'))).status).toBe(201);
    for (const c of clusters) {
      const r = await api('POST', '/api/v1/clusters', {
        metadata: { name: c.name },
        spec: {
          type: 'native',
          profile: { name: 'shop', revision: 1 },
          nodes: [
            { host: c.nodes[0], role: 'control-plane' },
            { host: c.nodes[1], role: 'worker' },
          ],
        },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    await Promise.all(clusters.map((c) => converged(c.name, 1, 90_000)));
    const rebootsBefore = new Map(await Promise.all(hosts.map(async (h) => [h, await reboots(h)] as const)));

    // The upgrade: a new OS image for every node (a repave: stage, cordon, drain, trial boot).
    const put = await api('PUT', '/api/v1/clusterprofiles/shop', profile('2.0.0'));
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const rev2 = (await api('GET', '/api/v1/clusterprofiles/shop')).body.status.latestRevision as number;
    for (const c of clusters) {
      const r = await api('PATCH', `/api/v1/clusters/${c.name}`, { spec: { profile: { name: 'shop', revision: rev2 } } }, 'application/merge-patch+json');
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    }

    // Mid-upgrade: some node inside its window (started, not done), some node not started yet.
    const nodePhases = async () =>
      (await Promise.all(clusters.map(async (c) => (await api('GET', `/api/v1/clusters/${c.name}`)).body.status?.upgrade?.nodes ?? []))).flat() as {
        phase: string;
      }[];
    await waitFor(
      async () => {
        const phases = (await nodePhases()).map((n) => n.phase);
        return phases.some((p) => ['Draining', 'Rebooting', 'Verifying'].includes(p)) && phases.some((p) => p === 'Pending' || p === 'Staged');
      },
      60_000,
      100,
    );
    const before = await lease();
    const holderUrl = await replicaUrl(before.holder);
    const holder = replicas.find((r) => r.url === holderUrl)!;
    expect(holder).toBeDefined();
    const killedAt = Date.now();
    await holder.proc.stop('SIGKILL');

    const after = await waitFor(
      async () => {
        const l = await lease();
        return l.holder !== before.holder && l;
      },
      LEASE_MOVE_BOUND_MS + 10_000,
      50,
    );
    const movedMs = Date.now() - killedAt;
    expect(after.epoch).toBe(before.epoch + 1);
    expect(replicas.some((r) => r !== holder)).toBe(true);
    expect(movedMs).toBeLessThanOrEqual(LEASE_MOVE_BOUND_MS + 1000);

    const done = await Promise.all(clusters.map((c) => converged(c.name, rev2, 120_000))).catch(async (err) => {
      const status = await Promise.all(clusters.map(async (c) => (await api('GET', `/api/v1/clusters/${c.name}`)).body.status));
      const logs = replicas.filter((r) => r !== holder).map((r) => `--- ${r.name}\n${r.proc.output().slice(-4000)}`);
      throw new Error(`${err.message}\n${JSON.stringify(status, null, 1)}\n${logs.join('\n')}`);
    });
    const finishedMs = Date.now() - killedAt;
    for (const c of done) {
      expect(c.status.upgrade).toMatchObject({ state: 'Succeeded', toRevision: rev2 });
      for (const n of c.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'] });
    }

    // Every node: exactly one trial boot, and each of its step events exactly once.
    const problems: string[] = [];
    for (const h of hosts) {
      const n = (await reboots(h)) - rebootsBefore.get(h)!;
      if (n !== 1) problems.push(`${h}: ${n} trial boots`);
    }
    for (const c of clusters) {
      const ev = (await events('Cluster', c.name)).filter((e) => !['Provisioning', 'ClusterRunning'].includes(e.reason));
      const count = (reason: string, host?: string) =>
        ev.filter((e) => e.reason === reason && (host === undefined || e.message.split(' ')[0] === host)).reduce((n, e) => n + e.count, 0);
      for (const reason of ['UpgradeStarted', 'UpgradeRolling', 'UpgradeSucceeded'])
        if (count(reason) !== 1) problems.push(`${c.name}: ${count(reason)} ${reason}`);
      for (const h of c.nodes)
        for (const reason of ['NodeStaged', 'NodeUpgradeStarted', 'NodeUpgraded'])
          if (count(reason, h) !== 1) problems.push(`${c.name}/${h}: ${count(reason, h)} ${reason}`);
      if (ev.some((e) => e.reason === 'UpgradeFailed')) problems.push(`${c.name}: UpgradeFailed`);
    }
    expect(problems).toEqual([]);
    console.log(
      `replicas failover: lease ${before.holder} (epoch ${before.epoch}) killed; taken by ${after.holder} after ${movedMs} ms (bound ${LEASE_MOVE_BOUND_MS} ms); ${CLUSTERS} upgrades done ${finishedMs} ms after the kill`,
    );
  }, 240_000);
});
