import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { DIALECTS, type Dialect, testStore } from '../../../test/support/db.js';
import { waitFor } from '../../../test/support/device.js';
import { type TestServer, testServer } from '../../../test/support/server.js';
import { openStore } from './store/db.js';
import { StoreHealth } from './store/store-health.js';

interface ReadyzBody {
  status?: string;
  store?: string;
  storeCheck?: { ageMs: number; latencyMs: number };
  error?: { code: string; message: string; details?: unknown };
}

/** GET /readyz, with how long the answer took. */
async function readyz(url: string) {
  const started = performance.now();
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as ReadyzBody, ms: performance.now() - started };
}

/**
 * Takes the test's store away from the server and brings it back: PostgreSQL refuses new connections
 * to the test database and ends the open ones (a database restart or failover as a replica sees it);
 * SQLite's database file leaves its path (a data dir unmounted or wiped).
 */
function storeSwitch(t: TestServer) {
  const admin = async (q: string) => {
    const c = new pg.Client({ connectionString: inject('postgresUrl') });
    await c.connect();
    try {
      await c.query(q);
    } finally {
      await c.end();
    }
  };
  const name = t.store.databaseUrl ? new URL(t.store.databaseUrl).pathname.slice(1) : '';
  const file = join(t.store.dataDir, 'edgeplane.db');
  return {
    async away() {
      if (t.store.dialect === 'sqlite') return renameSync(file, `${file}.away`);
      await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`);
    },
    async back() {
      if (t.store.dialect === 'sqlite') return renameSync(`${file}.away`, file);
      await admin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
    },
  };
}

const unreachable: Record<Dialect, RegExp> = {
  sqlite: /^store unreachable: unable to open database file/,
  postgres: /^store unreachable: .*not currently accepting connections/,
};

describe.each(DIALECTS)('readiness on %s', (dialect) => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('the store check answers while every pooled connection is held by other work', async () => {
    const place = await testStore(dialect);
    // Two pooled connections on PostgreSQL; SQLite has one connection, handed to one user at a time.
    const store = openStore({ dataDir: place.dataDir, databaseUrl: place.databaseUrl, poolSize: 2 });
    try {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const held = Array.from({ length: dialect === 'postgres' ? 2 : 1 }, () => {
        let acquired!: () => void;
        const got = new Promise<void>((r) => (acquired = r));
        const done = store.db.connection().execute(async (conn) => {
          await sql`select 1`.execute(conn);
          acquired();
          await gate;
        });
        return { got, done };
      });
      await Promise.all(held.map((h) => h.got));
      // A query through the pool now waits for a connection ...
      let pooledDone = false;
      const pooled = sql`select 1`.execute(store.db).then(() => (pooledDone = true));
      // ... while the store check does not.
      await store.ping(5000);
      await store.ping(5000);
      expect(pooledDone).toBe(false);
      release();
      await Promise.all([...held.map((h) => h.done), pooled]);
      expect(pooledDone).toBe(true);
    } finally {
      await store.close();
      await place.cleanup();
    }
  });

  it('answers ready at once from the last store check, with its age and latency, also in /metrics', async () => {
    t = await testServer(dialect, { readinessCheckIntervalMs: 100 });
    const r = await readyz(t.url);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'ready', store: dialect, storeCheck: { ageMs: expect.any(Number), latencyMs: expect.any(Number) } });
    // Checks keep running: a later answer reports a check newer than the server's first.
    const firstAt = Date.now() - r.body.storeCheck!.ageMs;
    await waitFor(async () => {
      const again = await readyz(t!.url);
      return again.status === 200 && Date.now() - again.body.storeCheck!.ageMs > firstAt + 50;
    });
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^edgeplane_store_check_duration_seconds \d/m);
    expect(Number(/^edgeplane_store_check_last_success_timestamp_seconds (\S+)/m.exec(metrics)?.[1])).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(metrics).toMatch(/^edgeplane_store_check_failures_total 0$/m);
  });

  it('answers 503 NotReady with the reason while the store is away, stays live, and is ready again when it is back', async () => {
    t = await testServer(dialect, { readinessCheckIntervalMs: 100 });
    const store = storeSwitch(t);
    expect((await readyz(t.url)).status).toBe(200);
    await store.away();
    try {
      // The state asserted below: PostgreSQL's first failed check may still report a pooled
      // connection it terminated ("terminating connection due to administrator command") before the
      // next one is refused as the database is away.
      const down = await waitFor(async () => {
        const r = await readyz(t!.url);
        return r.status === 503 && unreachable[dialect].test(r.body.error?.message ?? '') && r;
      });
      expect(down.body.error?.code).toBe('NotReady');
      expect(down.body.error?.message).toMatch(unreachable[dialect]);
      expect(down.body.error?.details).toMatchObject({ storeCheck: { ok: false }, lastSuccessAgeMs: expect.any(Number) });
      // Liveness does not ask the store: the process is fine, restarting it would not help.
      expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
      expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/^edgeplane_store_check_failures_total [1-9]/m);
    } finally {
      await store.back();
    }
    const up = await waitFor(async () => {
      const r = await readyz(t!.url);
      return r.status === 200 && r;
    });
    expect(up.body).toMatchObject({ status: 'ready', store: dialect });
  });

  it('says draining while shutting down, before any store reason', async () => {
    t = await testServer(dialect, { readinessCheckIntervalMs: 100, drainDelayMs: 1500 });
    const store = storeSwitch(t);
    await store.away();
    let closing: Promise<void> | undefined;
    try {
      await waitFor(async () => (await readyz(t!.url)).body.error?.message?.startsWith('store unreachable'));
      closing = t.server.close();
      const r = await readyz(t.url);
      expect(r.status).toBe(503);
      expect(r.body.error).toMatchObject({ code: 'NotReady', message: 'draining: this server is shutting down' });
    } finally {
      await store.back();
    }
    await closing;
    await t.store.cleanup();
    t = undefined;
  });
});

describe('readiness on postgres with the query pool saturated', () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('answers 200 at once from checks made while every pooled connection waits on a lock', async () => {
    t = await testServer('postgres', { readinessCheckIntervalMs: 100 });
    const name = new URL(t.store.databaseUrl!).pathname.slice(1);
    const admin = new pg.Client({ connectionString: inject('postgresUrl') });
    await admin.connect();
    const locker = new pg.Client({ connectionString: t.store.databaseUrl });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE edge_hosts IN ACCESS EXCLUSIVE MODE');
      // More host listings than the server's pool has connections (10): each holds one, waiting on the lock.
      const listings = Array.from({ length: 14 }, () => t!.api('GET', '/api/v1/edgehosts'));
      const waiting = async () =>
        (
          await admin.query(
            `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND application_name <> 'edgeplane-readiness'`,
            [name],
          )
        ).rows[0].n as number;
      await waitFor(async () => (await waiting()) >= 10, 30_000);
      const saturatedAt = Date.now();
      // Wait for an answer whose check finished after the pool was full; every answer is ready and
      // prompt (the balancer's check timeout is 2 s; a ping through the pool would wait for the lock).
      const answers: Awaited<ReturnType<typeof readyz>>[] = [];
      await waitFor(async () => {
        const a = await readyz(t!.url);
        answers.push(a);
        return a.status === 200 && Date.now() - a.body.storeCheck!.ageMs > saturatedAt;
      });
      for (const a of answers) {
        expect(a.status).toBe(200);
        expect(a.body).toMatchObject({ status: 'ready', store: 'postgres' });
        expect(a.ms).toBeLessThan(1500);
      }
      expect(await waiting()).toBeGreaterThanOrEqual(10);
      await locker.query('ROLLBACK');
      for (const l of await Promise.all(listings)) expect(l.status).toBe(200);
    } finally {
      await locker.end();
      await admin.end();
    }
  });
});

describe('store health', () => {
  it('is not ready once no check finished within three intervals and a timeout, nor when a check does not answer', async () => {
    let now = 1_000_000;
    let answer: () => Promise<void> = async () => {};
    const health = new StoreHealth(() => answer(), { intervalMs: 60_000, timeoutMs: 50, now: () => now });
    expect(health.readiness()).toMatchObject({ ready: false, reason: 'the store has not been checked yet' });
    await health.start();
    expect(health.readiness()).toMatchObject({ ready: true, ageMs: 0 });
    now += health.staleAfterMs;
    expect(health.readiness()).toMatchObject({ ready: true });
    now += 1;
    expect(health.readiness()).toMatchObject({ ready: false, reason: `no store check finished in the last ${60_000 * 3 + 50} ms`, lastSuccessAgeMs: 180_051 });
    await health.stop();
    // A store that never answers: the check fails after its timeout instead of waiting.
    answer = () => new Promise(() => {});
    const hung = new StoreHealth(() => answer(), { intervalMs: 60_000, timeoutMs: 50 });
    await hung.start();
    expect(hung.readiness()).toMatchObject({ ready: false, reason: 'store unreachable: no answer within 50 ms' });
    await hung.stop();
  });
});
