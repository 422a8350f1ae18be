import { request } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { openStore, type Store } from '../store/db.js';
import { deleteDeadPairings } from './pairing.repository.js';

/** An HTTP call from a chosen loopback source address (127.0.0.x), as a device at another address would make it. */
function call(
  url: string,
  method: string,
  body?: unknown,
  opts: { from?: string; headers?: Record<string, string> } = {},
  // biome-ignore lint/suspicious/noExplicitAny: answers are parsed JSON of many shapes
): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        localAddress: opts.from,
        headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}), ...opts.headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : undefined }));
      },
    );
    // A refused oversized body may close the socket before the whole body was written.
    req.on('error', reject);
    req.end(payload);
  });
}

function startBody(d: TestDevice, inventory: unknown = d.inventory()) {
  return d.pairingStartBody({ inventory });
}

/** An inventory with many NICs and addresses: `nics` × 64 addresses, about 2.6 KiB per NIC as JSON. */
function bigInventory(d: TestDevice, nics: number) {
  const addresses = Array.from({ length: 64 }, (_, i) => `fd00:1234:5678:9abc:def0:1234:5678:${i.toString(16)}/64`);
  return { ...d.inventory(), nics: Array.from({ length: nics }, (_, i) => ({ name: `eth${i}`, mac: '02:00:00:00:00:01', addresses })) };
}

describe.each(DIALECTS)('pairing limits on %s', (dialect) => {
  let t: TestServer | undefined;
  let store: Store | undefined;
  const pairings = async () =>
    Number(
      (
        await store!.db
          .selectFrom('pairings')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const open = async (options: Parameters<typeof testServer>[1] = {}) => {
    t = await testServer(dialect, options);
    store = openStore({ dataDir: t.store.dataDir, databaseUrl: t.store.databaseUrl, poolSize: 1 });
    return t;
  };
  afterEach(async () => {
    await store?.close();
    await t?.close();
    store = t = undefined;
  });

  it('refuses a flood of unauthenticated starts with huge inventories and stores nothing', async () => {
    const s = await open();
    const d = await TestDevice.create();
    // 200 NICs × 64 addresses (about 0.5 MB) is over the body limit: 413 before the body is read to its end.
    const huge = await startBody(d, bigInventory(d, 200));
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => call(`${s.url}/agent/v1/pairings`, 'POST', huge).catch(() => ({ status: 0, headers: {}, body: undefined }))),
    );
    for (const a of answers) expect([413, 0]).toContain(a.status); // 0: the server closed before the client finished writing
    expect(answers.some((a) => a.status === 413 && a.body?.error.code === 'BodyTooLarge')).toBe(true);
    // 8 NICs (about 21 KiB) fits the body limit but not the 16 KiB inventory limit: 400, field named.
    const mid = await call(`${s.url}/agent/v1/pairings`, 'POST', await startBody(d, bigInventory(d, 8)));
    expect(mid.status).toBe(400);
    expect(mid.body.error.code).toBe('ValidationFailed');
    expect(mid.body.error.details.issues[0].path).toBe('inventory');
    expect(await pairings()).toBe(0);
    // A real device's inventory still starts a session.
    expect((await call(`${s.url}/agent/v1/pairings`, 'POST', await startBody(d))).status).toBe(201);
    expect(await pairings()).toBe(1);
  });

  it('caps pending sessions per source address and in all, with Retry-After', async () => {
    const s = await open({ maxPendingPairings: 25, maxPendingPairingsPerSource: 20 });
    const start = async (from: string) => call(`${s.url}/agent/v1/pairings`, 'POST', await startBody(await TestDevice.create()), { from });
    for (let i = 0; i < 20; i++) expect((await start('127.0.0.1')).status).toBe(201);
    const over = await start('127.0.0.1');
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({ code: 'RateLimited', details: { limit: 'pendingPairingsPerSource' } });
    // The first of this address's sessions to expire frees a place: about the 15-minute TTL.
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(800);
    expect(await pairings()).toBe(20);
    // Another address has its own 20, but the server holds only 25 in all.
    for (let i = 0; i < 5; i++) expect((await start('127.0.0.2')).status).toBe(201);
    const full = await start('127.0.0.3');
    expect(full.status).toBe(429);
    expect(full.body.error.details.limit).toBe('pendingPairings');
    expect(full.headers['retry-after']).toBeDefined();
    expect(await pairings()).toBe(25);
    // Concurrent starts cannot slip past the cap together.
    const burst = await Promise.all(Array.from({ length: 10 }, () => start('127.0.0.4')));
    expect(burst.every((a) => a.status === 429)).toBe(true);
    expect(await pairings()).toBe(25);
  });

  it('holds one long-poll per session; the claim wakes it at once', async () => {
    const s = await open();
    const d = await TestDevice.create();
    const started = await call(`${s.url}/agent/v1/pairings`, 'POST', await startBody(d));
    const { id, code, pollSecret } = started.body;
    const poll = (wait: number) =>
      call(`${s.url}/agent/v1/pairings/${id}?waitSeconds=${wait}`, 'GET', undefined, { headers: { authorization: `Bearer ${pollSecret}` } }).then((r) => ({
        ...r,
        at: Date.now(),
      }));
    const t0 = Date.now();
    const polls = Array.from({ length: 50 }, () => poll(30));
    // All but one are answered at once with 429 and the time the held poll has left.
    const settled: Awaited<ReturnType<typeof poll>>[] = [];
    for (const p of polls) void p.then((r) => settled.push(r));
    const deadline = Date.now() + 5000;
    while (settled.length < 49 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(settled).toHaveLength(49);
    for (const r of settled) {
      expect(r.status).toBe(429);
      expect(r.body.error.code).toBe('RateLimited');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(20);
    }
    // A poll that does not wait is a plain read, answered at once.
    expect((await poll(0)).body.state).toBe('pending');
    // Claim well before the held poll's first store re-check (5 s): only the claim's notice can wake it.
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + 1000 - Date.now())));
    const claim = await s.api('POST', `/api/v1/pairings/${code}/claim`, {});
    expect(claim.status).toBe(200);
    const claimedAt = Date.now();
    const held = (await Promise.all(polls)).find((r) => r.status === 200)!;
    expect(held.body.state).toBe('claimed');
    expect(held.at - claimedAt).toBeLessThan(500);
    expect(held.at - t0).toBeLessThan(4000);
  });

  it('logs a client that hangs up mid-body at debug, never as an error', async () => {
    const logs: { level: number; msg: string }[] = [];
    const s = await open({ logger: pino({ level: 'debug' }, { write: (l: string) => logs.push(JSON.parse(l)) }) });
    const { port } = new URL(s.url);
    const sock = tcpConnect(Number(port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`POST /agent/v1/pairings HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 20000\r\n\r\n{"deviceUid":"`);
    await new Promise((r) => setTimeout(r, 100));
    sock.destroy();
    await waitFor(() => logs.find((l) => l.msg === 'client closed the connection before the request was complete'));
    expect(logs.filter((l) => l.level >= 50)).toEqual([]);
    expect(await pairings()).toBe(0);
  });

  it('prunes pending sessions past expiry and used ones past their registration window', async () => {
    const s = await open();
    const d = await TestDevice.create();
    expect((await call(`${s.url}/agent/v1/pairings`, 'POST', await startBody(d))).status).toBe(201);
    const live = await store!.db.selectFrom('pairings').selectAll().executeTakeFirstOrThrow();
    const at = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString();
    const row = (id: string, code: string, state: string, expiresAt: string) => ({ ...live, id, code, state, expires_at: expiresAt });
    await store!.db
      .insertInto('pairings')
      .values([
        row('expired-pending', 'AAAAAAA2', 'pending', at(-1)),
        row('claimed-recently', 'AAAAAAA3', 'claimed', at(-5)),
        row('claimed-long-ago', 'AAAAAAA4', 'claimed', at(-20)),
        row('completed-long-ago', 'AAAAAAA5', 'completed', at(-60)),
      ])
      .execute();
    // An expired session no longer counts against the caps, and the prune deletes it.
    const now = new Date().toISOString();
    expect(await deleteDeadPairings(store!.db, now, new Date(Date.now() - 15 * 60_000).toISOString())).toBe(3);
    const left = (await store!.db.selectFrom('pairings').select('id').execute()).map((r) => r.id).sort();
    expect(left).toEqual(['claimed-recently', live.id].sort());
  });
});
