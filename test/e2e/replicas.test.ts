import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WATCH_PROTOCOL } from '@edgeplane/protocol';
import { type RunningServer, startServer } from '@edgeplane/server';
import { type Fleet, startFleet } from '@edgeplane/sim';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ApiClient } from '../../packages/cli/src/api-client.js';
import { openSession } from '../../packages/cli/src/remote-session-client.js';
import { type CliProcess, runCli } from '../support/cli-process.js';
import { type TestStore, testStore } from '../support/db.js';
import { waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';
import { type Haproxy, startHaproxy } from '../support/haproxy.js';

const AGENTS = Number(process.env.EDGEPLANE_REPLICAS_AGENTS ?? 300);
const OFFLINE_AFTER = 6;
/** A dead replica's hosts are offline (or online through another replica) within its lease and a third. */
const DEAD_REPLICA_BOUND_MS = ((OFFLINE_AFTER * 4) / 3) * 1000;
const SECRET = 'replicas-e2e-secret';

type HostRow = { name: string; connectivity: string; replica: string | null };
/** A watch frame, as far as this test reads it. */
type WatchFrame = { type: string; object?: { metadata?: { name?: string }; spec: { displayName?: string } } };

/**
 * Three replicas on one embedded PostgreSQL behind HAProxy (health checks on /readyz, WebSocket agent
 * channels), with a few hundred simulated agents connecting through it. A and B run in this process,
 * C as its own `edgeplane server` process so it can be killed with SIGKILL.
 */
describe('three replicas behind HAProxy', () => {
  let store: TestStore;
  let a: RunningServer;
  let b: RunningServer;
  let c: CliProcess;
  let urlC: string;
  let lb: Haproxy;
  let fleet: Fleet | undefined;
  let db: pg.Client;
  let simDir: string;
  let admin: string;
  const ids: Record<'a' | 'b' | 'c', string> = { a: '', b: '', c: '' };
  const dirs: string[] = [];
  const dataDir = (name: string) => {
    const d = mkdtempSync(join(tmpdir(), `edgeplane-replicas-${name}-`));
    dirs.push(d);
    return d;
  };
  const inProcess = (name: string) =>
    startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: dataDir(name),
      databaseUrl: store.databaseUrl,
      offlineAfterSeconds: OFFLINE_AFTER,
      replicaSecret: SECRET,
      logger: pino({ level: process.env.EDGEPLANE_TEST_LOG ?? 'silent' }),
    });
  const api = async (url: string, method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const hosts = async () => (await db.query('select name, connectivity, replica from edge_hosts order by name')).rows as HostRow[];

  beforeAll(async () => {
    store = await testStore('postgres');
    a = await inProcess('a');
    admin = a.adminToken!;
    b = await inProcess('b');
    urlC = `http://127.0.0.1:${await freePort()}`;
    c = runCli(
      [
        'server',
        ...['--host', '127.0.0.1', '--port', new URL(urlC).port, '--data-dir', dataDir('c'), '--database-url', store.databaseUrl!],
        ...['--offline-after', String(OFFLINE_AFTER), '--log-level', 'info'],
      ],
      { EDGEPLANE_REPLICA_SECRET: SECRET },
    );
    await c.waitForOutput(/edgeplane server listening/);
    lb = await startHaproxy(
      [
        { name: 'a', url: a.url },
        { name: 'b', url: b.url },
        { name: 'c', url: urlC },
      ],
      { checkIntervalMs: 500 },
    );
    db = new pg.Client({ connectionString: store.databaseUrl });
    await db.connect();
    for (const r of (await db.query('select id, url from replicas')).rows as { id: string; url: string }[])
      if (r.url === a.url) ids.a = r.id;
      else if (r.url === b.url) ids.b = r.id;
      else if (r.url === urlC) ids.c = r.id;
    simDir = dataDir('sim');
  }, 60_000);
  afterAll(async () => {
    await fleet?.stop();
    await lb?.stop();
    await c?.stop('SIGKILL');
    await b?.close();
    await a?.close();
    await db?.end();
    await store?.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('serves a fleet through any replica and survives the loss of one', async () => {
    expect(Object.values(ids).every(Boolean)).toBe(true);
    const token = (await api(lb.url, 'POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: lb.url,
      token,
      sites: AGENTS,
      dataDir: simDir,
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 50, backoffCapMs: 1000 },
    });
    await fleet.waitUntilConnected(90_000);
    // Every host online, spread over the three replicas by HAProxy.
    await waitFor(async () => (await hosts()).filter((h) => h.connectivity === 'online').length === AGENTS, 30_000, 200);
    const byReplica = (rows: HostRow[], id: string) => rows.filter((h) => h.replica === id).map((h) => h.name);
    const spread = await hosts();
    for (const id of Object.values(ids)) expect(byReplica(spread, id).length).toBeGreaterThan(0);
    const onC = byReplica(spread, ids.c);

    // A spec change made through A reaches an agent held by C within 2 s; a watcher on B sees it.
    const target = onC[0];
    const agentOnC = fleet.agents.find((g) => g.hostName === target)!;
    const watch = await new Promise<{ ws: WebSocket; messages: WatchFrame[] }>((resolve, reject) => {
      const ws = new WebSocket(`${b.url.replace(/^http/, 'ws')}/api/v1/watch?kinds=edgehosts`, [WATCH_PROTOCOL, `bearer.${admin}`]);
      const messages: WatchFrame[] = [];
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString()) as WatchFrame;
        messages.push(m);
        if (m.type === 'READY') resolve({ ws, messages });
      });
      ws.on('error', reject);
    });
    const spec = new Promise<number>((r) => agentOnC.on('spec', ({ generation }) => r(generation)));
    const changedAt = Date.now();
    const patched = await api(a.url, 'PATCH', `/api/v1/edgehosts/${target}`, { spec: { displayName: 'changed through A' } }, 'application/merge-patch+json');
    expect(patched.status).toBe(200);
    expect(await spec).toBe(patched.body.metadata.generation);
    expect(Date.now() - changedAt).toBeLessThan(2000);
    await waitFor(() => watch.messages.some((m) => m.object?.metadata?.name === target && m.object?.spec.displayName === 'changed through A'), 2000, 20);
    watch.ws.close();

    // A shell opened through A to a host on C works and is recorded.
    const client = new ApiClient({ server: a.url, token: admin });
    const { session, attached } = await openSession(client, admin, target, { kind: 'shell', reason: 'replicas e2e', cols: 80, rows: 24 });
    let out = '';
    attached.on('output', (_s, d) => {
      out += d.toString();
    });
    // Input sent before the shell reads its terminal can be dropped: wait for the prompt.
    await waitFor(() => /[#$] $/.test(out), 15_000, 20);
    attached.input('echo shell-on-$((6*7))\n');
    await waitFor(() => out.includes('shell-on-42'), 15_000, 20).catch((err) => {
      throw new Error(`${err.message}; shell output: ${JSON.stringify(out)}`);
    });
    attached.input('exit\n');
    expect(await attached.done).toMatchObject({ code: 0 });
    const id = session.metadata.name;
    expect((await db.query('select replica from remote_sessions where name = $1', [id])).rows[0].replica).toBe(ids.c);
    const rec = await fetch(`${lb.url}/api/v1/remotesessions/${id}/recording`, { headers: { authorization: `Bearer ${admin}` } });
    expect(rec.status).toBe(200);
    expect(await rec.text()).toContain('shell-on-42');

    // kill -9 C: its agents reconnect through HAProxy to A and B; none of its hosts stays online
    // through the dead replica beyond the bound, and none is offline for longer than it.
    const offlineSince = new Map<string, number>();
    const longestOffline = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = Date.now();
        for (const h of await hosts()) {
          if (h.connectivity === 'online') {
            const since = offlineSince.get(h.name);
            if (since !== undefined) longestOffline.set(h.name, Math.max(longestOffline.get(h.name) ?? 0, now - since));
            offlineSince.delete(h.name);
          } else if (!offlineSince.has(h.name)) offlineSince.set(h.name, now);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    // A session C serves when it dies: the others end it (its agent's process went with the channel).
    const running = await openSession(client, admin, target, { kind: 'exec', reason: 'outlives its replica?', command: ['sleep', '600'] });
    const runningId = running.session.metadata.name;
    await waitFor(async () => (await db.query('select phase from remote_sessions where name = $1', [runningId])).rows[0].phase === 'active', 10_000);
    const killedAt = Date.now();
    await c.stop('SIGKILL');
    await waitFor(async () => byReplica(await hosts(), ids.c).length === 0, DEAD_REPLICA_BOUND_MS + 2000, 100);
    const releasedMs = Date.now() - killedAt;
    // The operator's proxied socket closes with the dead replica's.
    await Promise.race([running.attached.done.catch(() => undefined), new Promise((_, no) => setTimeout(() => no(new Error('operator not told')), 5000))]);
    await waitFor(
      async () => {
        const row = (await db.query('select phase, status from remote_sessions where name = $1', [runningId])).rows[0];
        return row.phase === 'ended' && JSON.parse(row.status).endReason === 'replica-lost';
      },
      DEAD_REPLICA_BOUND_MS + 2000,
      200,
    );
    await waitFor(async () => (await hosts()).every((h) => h.connectivity === 'online' && (h.replica === ids.a || h.replica === ids.b)), 30_000, 200);
    const recoveredMs = Date.now() - killedAt;
    // Every agent of the dead replica is back through HAProxy within 30 s.
    expect(recoveredMs).toBeLessThan(30_000);
    sampling = false;
    await sampler;
    for (const [name, since] of offlineSince) longestOffline.set(name, Math.max(longestOffline.get(name) ?? 0, Date.now() - since));
    const worst = Math.max(0, ...longestOffline.values());
    expect(worst).toBeLessThanOrEqual(DEAD_REPLICA_BOUND_MS + 2000);
    expect(await fleet.agents.every((g) => g.connected)).toBe(true);
    expect((await hosts()).length).toBe(AGENTS);
    console.log(
      `replicas e2e: ${AGENTS} agents (${onC.length} on C); C's hosts released ${releasedMs} ms after kill -9, all online through A/B after ${recoveredMs} ms; longest offline ${worst} ms (bound ${DEAD_REPLICA_BOUND_MS} ms)`,
    );
  }, 150_000);
});
