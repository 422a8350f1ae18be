import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunningServer, startServer } from '@edgeplane/server';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli } from '../support/cli-process.js';
import { type TestStore, testStore } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';

const OFFLINE_AFTER = 3;

/**
 * Two replicas on one PostgreSQL database: A a real `edgeplane server` process (so it can be killed
 * with SIGKILL), B in this process. Connectivity is written by the replica holding the agent's
 * channel: starting B leaves A's hosts online, an agent that moved to B is not taken offline by A,
 * and when A dies its hosts go offline within its lease (offline-after) and a third.
 */
describe('host connectivity across replicas on PostgreSQL', () => {
  let store: TestStore;
  let a: CliProcess;
  let b: RunningServer | undefined;
  let urlA: string;
  let admin: string;
  let db: pg.Client;
  const heartbeats: NodeJS.Timeout[] = [];

  const api = async (url: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const hostRow = async (name: string) =>
    (await db.query('select connectivity, replica, resource_version from edge_hosts where name = $1', [name])).rows[0] as {
      connectivity: string;
      replica: string | null;
      resource_version: number;
    };
  const offlineEvents = async (name: string) =>
    Number((await db.query(`select count(*) from events where involved_name = $1 and spec like '%"reason":"Offline"%'`, [name])).rows[0].count);
  /** An agent channel that sends heartbeats like a real agent (offline-after is short here). */
  const agent = async (url: string, device: TestDevice, host: string) => {
    const ch = await connect(url, await device.connectToken(host));
    ch.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    let seq = 0;
    heartbeats.push(setInterval(() => ch.ws.readyState === ch.ws.OPEN && ch.ws.send(JSON.stringify({ type: 'heartbeat', seq: ++seq })), 500));
    return ch;
  };

  beforeAll(async () => {
    store = await testStore('postgres');
    urlA = `http://127.0.0.1:${await freePort()}`;
    const args = ['server', '--host', '127.0.0.1', '--port', new URL(urlA).port, '--data-dir', join(store.dataDir, 'a'), '--database-url', store.databaseUrl!];
    a = runCli([...args, '--offline-after', String(OFFLINE_AFTER), '--log-level', 'warn']);
    admin = readFileSync((await a.waitForOutput(/Its API token is in (\S+) \(mode 0600/))[1], 'utf8').trim();
    db = new pg.Client({ connectionString: store.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    for (const t of heartbeats) clearInterval(t);
    await b?.close();
    await a?.stop('SIGKILL');
    await db?.end();
    await store?.cleanup();
  });

  it('keeps live replicas’ hosts online and takes a dead replica’s offline within its lease', async () => {
    const token = (await api(urlA, 'POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    const x = await TestDevice.create();
    const y = await TestDevice.create();
    const hostX = (await register(urlA, await x.registerBody(token))).body.hostName;
    const hostY = (await register(urlA, await y.registerBody(token))).body.hostName;
    const xOnA = await agent(urlA, x, hostX);
    const yOnA = await agent(urlA, y, hostY);
    await waitFor(async () => (await hostRow(hostX)).connectivity === 'online' && (await hostRow(hostY)).connectivity === 'online');
    const replicaA = (await hostRow(hostX)).replica;
    expect(replicaA).toBeTruthy();

    // B starts on the same database: A's hosts stay online (a single server marks all hosts offline at start).
    b = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(store.dataDir, 'b'),
      databaseUrl: store.databaseUrl,
      offlineAfterSeconds: OFFLINE_AFTER,
      logger: pino({ level: 'silent' }),
    });
    // Y's agent moves to B (a load balancer sent it elsewhere), then its old channel to A closes.
    await agent(b.url, y, hostY);
    await waitFor(async () => {
      const r = await hostRow(hostY);
      return r.replica !== replicaA && r.connectivity === 'online';
    });
    const versionY = (await hostRow(hostY)).resource_version;
    yOnA.ws.close();
    // Nothing to wait for: the claim is that nothing happens. Two leases give both replicas time to
    // renew, sweep and flush several times over.
    await new Promise((r) => setTimeout(r, 2 * OFFLINE_AFTER * 1000));
    expect(await hostRow(hostX)).toMatchObject({ connectivity: 'online', replica: replicaA });
    expect(await hostRow(hostY)).toMatchObject({ connectivity: 'online', resource_version: versionY });
    expect(await offlineEvents(hostX)).toBe(0);
    expect(await offlineEvents(hostY)).toBe(0);

    // kill -9 A: nobody closes X's channel cleanly; B takes X offline once A's lease ran out.
    const killedAt = Date.now();
    await a.stop('SIGKILL');
    await waitFor(async () => (await hostRow(hostX)).connectivity === 'offline', 20_000, 100);
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThanOrEqual(((OFFLINE_AFTER * 4) / 3) * 1000 + 2000);
    expect(await offlineEvents(hostX)).toBe(1);
    expect((await api(b.url, 'GET', `/api/v1/edgehosts/${hostX}`)).body.status.connectivity).toBe('offline');
    // Y, held by B, never went offline.
    expect(await hostRow(hostY)).toMatchObject({ connectivity: 'online' });
    expect(await offlineEvents(hostY)).toBe(0);
    xOnA.ws.terminate();
  });
});
