import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningServer, startServer } from '@edgeplane/server';
import { type Fleet, startFleet } from '@edgeplane/sim';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestStore, testStore } from '../support/db.js';
import { connect, TestDevice, waitFor } from '../support/device.js';
import { type Haproxy, startHaproxy } from '../support/haproxy.js';

const OFFLINE_AFTER = 15;
/** The draining replica's lease covers the hosts it handed off this long (min(offline-after, 10 s)). */
const GRACE_MS = Math.min(OFFLINE_AFTER * 1000, 10_000);
const AGENTS = 8;

/** Sum of a Prometheus counter's samples in a /metrics exposition. */
async function counter(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

/**
 * Graceful shutdown of a replica behind HAProxy on one PostgreSQL database: the replica reports
 * not-ready on /readyz first (HAProxy takes it out), then closes its agents' channels with
 * `reconnectElsewhere`; the agents reconnect at once through HAProxy to the other replica, without
 * registering again and without their hosts being marked offline.
 */
describe('draining a replica behind HAProxy', () => {
  let store: TestStore;
  let a: RunningServer;
  let b: RunningServer;
  let lb: Haproxy;
  let fleet: Fleet | undefined;
  let db: pg.Client;
  let simDir: string;
  const start = (name: string) =>
    startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(store.dataDir, name),
      databaseUrl: store.databaseUrl,
      offlineAfterSeconds: OFFLINE_AFTER,
      // Longer than HAProxy's check interval: it has marked the replica down before its agents move.
      drainDelayMs: 1000,
      logger: pino({ level: process.env.EDGEPLANE_TEST_LOG ?? 'silent' }),
    });

  beforeAll(async () => {
    store = await testStore('postgres');
    a = await start('a');
    b = await start('b');
    lb = await startHaproxy(
      [
        { name: 'a', url: a.url },
        { name: 'b', url: b.url },
      ],
      { checkIntervalMs: 300 },
    );
    db = new pg.Client({ connectionString: store.databaseUrl });
    await db.connect();
    simDir = mkdtempSync(join(tmpdir(), 'edgeplane-drain-sim-'));
  });
  afterAll(async () => {
    await fleet?.stop();
    await lb?.stop();
    await b?.close();
    await a?.close().catch(() => {});
    await db?.end();
    await store?.cleanup();
    if (simDir) rmSync(simDir, { recursive: true, force: true });
  });

  it('hands its agents to the other replica: no registration, never offline', async () => {
    const admin = a.adminToken!;
    const res = await fetch(`${lb.url}/api/v1/registrationtokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ metadata: { name: 'auto' }, spec: { autoApprove: true } }),
    });
    const token = (await res.json()).status.token;
    fleet = await startFleet({
      server: lb.url,
      token,
      sites: AGENTS,
      dataDir: simDir,
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 200, backoffCapMs: 5000 },
    });
    await fleet.waitUntilConnected(30_000);
    const replicas = (await db.query('select id from replicas order by started_at')).rows.map((r) => r.id as string);
    expect(replicas).toHaveLength(2);
    const [idA, idB] = replicas;
    const hosts = async () =>
      (await db.query('select name, connectivity, replica from edge_hosts order by name')).rows as { name: string; connectivity: string; replica: string }[];
    await waitFor(async () => (await hosts()).filter((h) => h.connectivity === 'online').length === AGENTS, 20_000);
    // leastconn spreads the agents over both replicas.
    const onA = (await hosts()).filter((h) => h.replica === idA).map((h) => h.name);
    expect(onA.length).toBeGreaterThan(0);
    const names = fleet.agents.map((g) => g.hostName).sort();
    const registrations = (await counter(a.url, 'edgeplane_registrations_total')) + (await counter(b.url, 'edgeplane_registrations_total'));
    expect(registrations).toBe(AGENTS);
    const registrationsOnB = await counter(b.url, 'edgeplane_registrations_total');

    // Every host stays online while A drains: sample the store throughout.
    let sampling = true;
    const offlineSeen = new Set<string>();
    const sampler = (async () => {
      while (sampling) {
        for (const h of await hosts()) if (h.connectivity !== 'online') offlineSeen.add(h.name);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const closing = a.close();
    // Not ready first, while its agents are still connected.
    await waitFor(async () => (await fetch(`${a.url}/readyz`)).status === 503, 1000, 20);
    const ready = await fetch(`${a.url}/readyz`);
    expect((await ready.json()).error).toMatchObject({ code: 'NotReady', message: expect.stringContaining('draining') });
    expect((await hosts()).filter((h) => h.replica === idA).length).toBe(onA.length);
    // An agent reaching the draining replica directly (not through the balancer) is refused, retryable.
    const stray = await TestDevice.create();
    const refused = await connect(a.url, await stray.connectToken(onA[0])).then(
      (ch) => {
        ch.ws.close();
        return undefined;
      },
      (err: { status?: number; body?: { error?: { code?: string } } }) => err,
    );
    expect(refused?.status).toBe(503);
    expect(refused?.body?.error?.code).toBe('NotReady');
    const closedAt = Date.now();
    await closing;
    // The agents it held are on B before its lease's hand-off grace ends (jitter below their 200 ms backoff base).
    await waitFor(async () => (await hosts()).every((h) => h.connectivity === 'online' && h.replica === idB), GRACE_MS, 50).catch(async (err) => {
      throw new Error(`${err.message}: ${JSON.stringify(await hosts())}; offline seen: ${[...offlineSeen]}`);
    });
    const movedMs = Date.now() - closedAt;
    sampling = false;
    await sampler;
    expect(offlineSeen).toEqual(new Set());
    const offlineEvents = await db.query(`select count(*) from events where spec like '%"reason":"Offline"%'`);
    expect(Number(offlineEvents.rows[0].count)).toBe(0);
    // Same hosts, no registration: B registered nobody and the agents kept their host names.
    expect(await counter(b.url, 'edgeplane_registrations_total')).toBe(registrationsOnB);
    expect(fleet.agents.map((g) => g.hostName).sort()).toEqual(names);
    expect((await hosts()).map((h) => h.name)).toEqual(names);
    expect(movedMs).toBeLessThan(GRACE_MS);
  });
});
