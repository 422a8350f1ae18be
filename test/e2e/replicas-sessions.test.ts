import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningServer, startServer } from '@edgeplane/server';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttachedSession } from '../../packages/cli/src/remote-session-client.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

const SECRET = 'replica-secret-for-tests';

/**
 * Remote sessions across replicas on one PostgreSQL database: a session opened through replica A for
 * a host whose agent is connected to replica C is served by C (flow control with the agent, the
 * recording, the store writes) and proxied A <-> C, authenticated with the replicas' shared secret.
 * A replica starting on the database leaves sessions other replicas serve alone.
 */
describe('remote sessions across replicas on PostgreSQL', () => {
  let a: TestServer;
  let c: RunningServer;
  let b: RunningServer | undefined;
  const dirs: string[] = [];
  let db: pg.Client;
  let host: string;
  let dev: TestDevice;
  // biome-ignore lint/suspicious/noExplicitAny: frames are checked field by field in the assertions
  let agent: { ws: import('ws').WebSocket; messages: any[] };
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const sendAgent = (m: unknown) => agent.ws.send(JSON.stringify(m));
  const openFrame = (id: string) => waitFor(() => agent.messages.find((m) => m.type === 'session.open' && m.id === id));
  const replica = (name: string, secret: string | null = SECRET) => {
    const dataDir = mkdtempSync(join(tmpdir(), `edgeplane-replica-${name}-`));
    dirs.push(dataDir);
    return startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir,
      databaseUrl: a.store.databaseUrl,
      replicaSecret: secret ?? undefined,
      logger: pino({ level: process.env.EDGEPLANE_TEST_LOG ?? 'silent' }),
    });
  };
  const sessionRow = async (id: string) => (await db.query('select phase, replica from remote_sessions where name = $1', [id])).rows[0];
  const sessionCount = async () => Number((await db.query('select count(*) from remote_sessions')).rows[0].count);

  beforeAll(async () => {
    a = await testServer('postgres', { replicaSecret: SECRET });
    c = await replica('c');
    db = new pg.Client({ connectionString: a.store.databaseUrl });
    await db.connect();
    const tok = await a.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } });
    dev = await TestDevice.create();
    host = (await register(a.url, await dev.registerBody(tok.body.status.token))).body.hostName;
    // The agent is connected to C only.
    agent = await connect(c.url, await dev.connectToken(host));
    agent.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    await waitFor(() => agent.messages.some((m) => m.type === 'welcome'));
    await waitFor(async () => (await a.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity === 'online');
  });
  afterAll(async () => {
    agent?.ws.close();
    await b?.close();
    await c?.close();
    await db?.end();
    await a?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('opens, relays and records a session through A whose agent is on C', async () => {
    const r = await a.api('POST', `/api/v1/edgehosts/${host}/sessions`, { kind: 'shell', reason: 'proxied shell', cols: 80, rows: 24 });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const id = r.body.metadata.name;
    // The link names A (where the operator came in); the session is served by C.
    expect(r.body.status.url).toBe(`${a.url.replace('http', 'ws')}/api/v1/remotesessions/${id}/attach`);
    const cReplica = (await db.query('select replica from edge_hosts where name = $1', [host])).rows[0].replica;
    expect(await sessionRow(id)).toEqual({ phase: 'pending', replica: cReplica });

    // Attached through A with C's one-time ticket.
    const op = new AttachedSession(a.url, id, { ticket: r.body.status.attachTicket });
    expect(await openFrame(id)).toMatchObject({ kind: 'shell', cols: 80, rows: 24 });
    const out: string[] = [];
    op.on('output', (_s, d) => out.push(d.toString()));
    sendAgent({ type: 'session.opened', id, user: 'root' });
    sendAgent({ type: 'session.output', id, data: b64('hello from C'), seq: 0 });
    await waitFor(() => out.join('') === 'hello from C');
    // C acks the agent's output once the proxied operator socket took it: the same flow control.
    await waitFor(() => agent.messages.some((m) => m.type === 'session.ack' && m.id === id && m.bytes === 12));
    op.input('ls\n');
    await waitFor(() => agent.messages.find((m) => m.type === 'session.input' && m.id === id && m.data === b64('ls\n')));
    sendAgent({ type: 'session.exit', id, code: 0, signal: null, reason: 'exit' });
    expect(await op.done).toEqual({ code: 0, signal: null, reason: 'exit' });
    expect((await a.api('GET', `/api/v1/remotesessions/${id}`)).body.status).toMatchObject({ phase: 'ended', bytesIn: 3, bytesOut: 12 });

    // The recording is in C's data dir; A fetches it from C.
    const rec = await fetch(`${a.url}/api/v1/remotesessions/${id}/recording`, { headers: { authorization: `Bearer ${a.admin}` } });
    expect(rec.status).toBe(200);
    expect(rec.headers.get('content-type')).toBe('application/x-asciicast');
    const cast = await rec.text();
    expect(cast).toContain('hello from C');
    expect(cast).toContain('ls\\n');
    const audit = await a.api('GET', '/api/v1/audit?limit=500');
    const entries = (audit.body.items ?? []).filter((e: { details?: { session?: string } }) => e.details?.session === id);
    expect(entries.map((e: { action: string }) => e.action).sort()).toEqual(['session.end', 'session.start']);
  });

  it('a stalled operator on A slows the agent on C: nothing buffers without bound between them', async () => {
    const r = await a.api('POST', `/api/v1/edgehosts/${host}/sessions`, { kind: 'exec', reason: 'flood', command: ['cat', '/dev/zero'] });
    const id = r.body.metadata.name;
    const op = new AttachedSession(a.url, id, { token: a.admin });
    const open = await openFrame(id);
    let received = 0;
    op.on('output', (_s, d) => {
      received += d.length;
    });
    let acked = 0;
    agent.ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'session.ack' && m.id === id) acked += m.bytes;
    });
    sendAgent({ type: 'session.opened', id });
    await op.ready();
    op.pause(); // the operator stops reading
    // The agent sends as its window allows, like a real one: output until `window` bytes are unacked.
    const chunk = b64('z'.repeat(32 * 1024));
    let sent = 0;
    let seq = 0;
    const pump = () => {
      while (sent - acked + 32 * 1024 <= open.window) {
        sendAgent({ type: 'session.output', id, data: chunk, seq: seq++ });
        sent += 32 * 1024;
      }
    };
    const timer = setInterval(pump, 5);
    // Acks stop once the buffers on the way (socket buffers and at most a window on A) are full.
    let last = -1;
    await waitFor(
      async () => {
        const was = last;
        last = acked;
        await new Promise((res) => setTimeout(res, 700));
        return acked === was && acked === last;
      },
      30_000,
      0,
    );
    const stalledAt = acked;
    expect(stalledAt).toBeLessThan(32 * 1024 * 1024); // ~7 MiB of socket buffers here
    expect(sent - acked).toBeLessThanOrEqual(open.window);
    // Reading again drains everything, in order and complete.
    op.resume();
    await waitFor(() => acked > stalledAt + 4 * open.window, 20_000).catch((e) => {
      throw new Error(`${e.message}: stalled at ${stalledAt}, acked ${acked}, sent ${sent}, received ${received}`);
    });
    clearInterval(timer);
    await waitFor(() => acked === sent && received === sent, 20_000).catch((e) => {
      throw new Error(`${e.message}: acked ${acked}, sent ${sent}, received ${received}`);
    });
    op.terminate();
    await op.done;
  });

  it('a replica starting leaves sessions live on C alone; terminate through it reaches C', async () => {
    const r = await a.api('POST', `/api/v1/edgehosts/${host}/sessions`, { kind: 'exec', reason: 'long job', command: ['sleep', '600'] });
    const id = r.body.metadata.name;
    const op = new AttachedSession(a.url, id, { token: a.admin });
    await openFrame(id);
    sendAgent({ type: 'session.opened', id });
    await waitFor(async () => (await sessionRow(id)).phase === 'active');

    b = await replica('b');
    expect((await sessionRow(id)).phase).toBe('active');
    const t = await fetch(`${b.url}/api/v1/remotesessions/${id}/terminate`, { method: 'POST', headers: { authorization: `Bearer ${a.admin}` } });
    expect(t.status).toBe(200);
    await waitFor(() => agent.messages.find((m) => m.type === 'session.close' && m.id === id && m.reason === 'terminated'));
    expect(await op.done).toMatchObject({ reason: 'terminated' });
    expect(await sessionRow(id)).toMatchObject({ phase: 'ended' });
  });

  it('refuses a forged replica credential and stores nothing', async () => {
    const before = await sessionCount();
    for (const forged of ['wrong-secret', '']) {
      const res = await fetch(`${a.url}/api/v1/edgehosts/${host}/sessions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${a.admin}`,
          'content-type': 'application/json',
          'x-edgeplane-replica-auth': forged,
          'x-edgeplane-forwarded-base': 'http://attacker.example',
        },
        body: JSON.stringify({ kind: 'exec', reason: 'forged', command: ['id'] }),
      });
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe('Unauthenticated');
    }
    expect(await sessionCount()).toBe(before);
  });

  it('a serving replica that cannot be reached answers ReplicaUnreachable, and stores nothing', async () => {
    // A host online through a replica whose lease is live but whose advertised address answers nothing
    // (a wrong EDGEPLANE_REPLICA_URL, or a network split between replicas).
    const tok = await a.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'ghostly' }, spec: { autoApprove: true } });
    const other = await TestDevice.create();
    const ghostHost = (await register(a.url, await other.registerBody(tok.body.status.token))).body.hostName;
    const now = new Date();
    await db.query('insert into replicas (id, started_at, expires_at, url) values ($1, $2, $3, $4)', [
      'ghost',
      now.toISOString(),
      new Date(now.getTime() + 600_000).toISOString(),
      'http://127.0.0.1:1',
    ]);
    await db.query(`update edge_hosts set connectivity = 'online', replica = 'ghost' where name = $1`, [ghostHost]);
    const before = await sessionCount();
    const r = await a.api('POST', `/api/v1/edgehosts/${ghostHost}/sessions`, { kind: 'exec', reason: 'unreachable', command: ['id'] });
    expect(r.status).toBe(502);
    expect(r.body.error.code).toBe('ReplicaUnreachable');
    expect(await sessionCount()).toBe(before);
    await db.query(`update edge_hosts set connectivity = 'offline', replica = null where name = $1`, [ghostHost]);
    await db.query(`delete from replicas where id = 'ghost'`);
  });

  it('a replica without the shared secret answers HostOffline naming it, and stores nothing', async () => {
    const lone = await replica('lone', null);
    try {
      const before = await sessionCount();
      const res = await fetch(`${lone.url}/api/v1/edgehosts/${host}/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${a.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'exec', reason: 'no secret', command: ['id'] }),
      });
      const body = await res.json();
      expect(res.status).toBe(409);
      expect(body.error).toMatchObject({ code: 'HostOffline', message: expect.stringContaining('EDGEPLANE_REPLICA_SECRET') });
      expect(await sessionCount()).toBe(before);
    } finally {
      await lone.close();
    }
  });
});
