import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { DIALECTS } from '../../../../test/support/db.js';
import { connect, register, TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { openStore, type Store } from '../store/db.js';

interface LogLine {
  level: number;
  msg: string;
  host?: string;
  code?: string;
  err?: { stack?: string };
}

interface Agent {
  name: string;
  ws: WebSocket;
  // biome-ignore lint/suspicious/noExplicitAny: server frames as parsed JSON
  messages: any[];
  closed: Promise<number>;
}

describe.each(DIALECTS)('agent channel limits on %s', (dialect) => {
  let t: TestServer | undefined;
  let store: Store | undefined;
  let logs: LogLine[] = [];
  let device: TestDevice;
  let hostName: string;

  const open = async (options: Parameters<typeof testServer>[1] = {}) => {
    logs = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
    t = await testServer(dialect, { logger, ...options });
    store = openStore({ dataDir: t.store.dataDir, databaseUrl: t.store.databaseUrl, poolSize: 1 });
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'rt' }, spec: { autoApprove: true } })).body.status.token;
    device = await TestDevice.create();
    hostName = (await register(t.url, await device.registerBody(token))).body.hostName;
    return t;
  };
  afterEach(async () => {
    await store?.close();
    await t?.close();
    store = t = undefined;
  });

  /** A fresh channel for the host, past hello and welcome. */
  const channel = async (): Promise<Agent> => {
    const { ws, messages } = await connect(t!.url, await device.connectToken(hostName));
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 't' }));
    await waitFor(() => messages.find((m) => m.type === 'welcome'));
    return { name: hostName, ws, messages, closed };
  };
  /** Messages are handled in order: the error frame of a last invalid message means everything before it was handled. */
  // Only the marker's own answer counts: a RateLimited error frame may still be on its way when this starts.
  const drained = async (a: Agent) => {
    const markerErrors = () => a.messages.filter((m) => m.type === 'error' && m.code === 'ValidationFailed').length;
    const before = markerErrors();
    a.ws.send(JSON.stringify({ type: 'marker' }));
    await waitFor(() => markerErrors() > before, 20_000);
  };
  const storedStatus = async () => (await store!.db.selectFrom('edge_hosts').select('status').where('name', '=', hostName).executeTakeFirstOrThrow()).status;
  const eventsOf = async (name: string, reason?: string) => {
    const rows = await store!.db.selectFrom('events').select(['name', 'spec', 'created_at']).where('involved_name', '=', name).execute();
    return rows.filter((r) => !reason || JSON.parse(r.spec).reason === reason);
  };

  it('stores at most burst + refill of an event flood, drops the rest with one warning and a metric', async () => {
    const s = await open();
    const a = await channel();
    const t0 = Date.now();
    for (let i = 0; i < 500; i++)
      a.ws.send(
        JSON.stringify({
          type: 'event',
          id: `flood-${i}`,
          eventType: 'Warning',
          reason: 'Flood',
          message: 'x'.repeat(4000),
          timestamp: new Date().toISOString(),
        }),
      );
    await drained(a);
    const seconds = (Date.now() - t0) / 1000;
    const stored = (await eventsOf(a.name, 'Flood')).length;
    expect(stored).toBeGreaterThanOrEqual(50);
    expect(stored).toBeLessThanOrEqual(50 + Math.ceil(seconds) + 1);
    expect(a.messages.filter((m) => m.type === 'error' && m.code === 'RateLimited')).toHaveLength(1);
    expect(logs.filter((l) => l.msg.startsWith('agent sends events faster'))).toHaveLength(1);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(Number(/^edgeplane_agent_events_dropped_total (\d+)/m.exec(metrics)?.[1])).toBe(500 - stored);
    // Reconnecting buys no new burst.
    a.ws.close();
    const b = await channel();
    b.ws.send(JSON.stringify({ type: 'event', id: 'after-reconnect', eventType: 'Normal', reason: 'Again', message: '', timestamp: new Date().toISOString() }));
    await drained(b);
    expect((await eventsOf(a.name, 'Flood')).length + (await eventsOf(a.name, 'Again')).length).toBeLessThanOrEqual(
      50 + Math.ceil((Date.now() - t0) / 1000) + 1,
    );
    b.ws.close();
  }, 60_000);

  it('refuses a status with a 900 KB message and leaves host status as it was; clips 5 KB', async () => {
    await open();
    const a = await channel();
    a.ws.send(JSON.stringify({ type: 'status', status: { managers: { kubernetes: { phase: 'Ready', ready: true, message: 'fine' } } } }));
    await waitFor(async () => JSON.parse(await storedStatus()).agent?.managers?.kubernetes?.message === 'fine');
    const before = await storedStatus();
    for (const field of ['message', 'version'])
      a.ws.send(JSON.stringify({ type: 'status', status: { managers: { kubernetes: { phase: 'Failed', ready: false, [field]: 'y'.repeat(900_000) } } } }));
    a.ws.send(JSON.stringify({ type: 'status', status: { conditions: [{ type: 'x'.repeat(300), status: 'True' }] } }));
    await drained(a);
    const refusals = a.messages.filter((m) => m.type === 'error' && m.code === 'ValidationFailed' && /too big|at most/i.test(m.message));
    expect(refusals).toHaveLength(3);
    expect(await storedStatus()).toBe(before);
    // Long text short of the hard limit (a failing command's stderr) is kept, clipped.
    a.ws.send(JSON.stringify({ type: 'status', status: { managers: { kubernetes: { phase: 'Failed', ready: false, message: 'z'.repeat(5000) } } } }));
    await waitFor(async () => JSON.parse(await storedStatus()).agent?.managers?.kubernetes?.phase === 'Failed');
    const message: string = JSON.parse(await storedStatus()).agent.managers.kubernetes.message;
    expect(message).toHaveLength(4096);
    expect(message.endsWith('…')).toBe(true);
    a.ws.close();
  });

  it('closes a channel with 4400 after 20 invalid messages, warning once; an oversized frame is one warning line', async () => {
    await open();
    const a = await channel();
    const before = await storedStatus();
    for (let i = 0; i < 25; i++) a.ws.send(i % 2 ? '{not json' : JSON.stringify({ type: 'status', status: { conditions: 'nope' } }));
    expect(await a.closed).toBe(4400);
    expect(a.messages.filter((m) => m.type === 'error')).toHaveLength(20);
    expect(await storedStatus()).toBe(before);
    const mine = logs.filter((l) => l.host === hostName);
    expect(mine.filter((l) => l.level === 40 && l.msg === 'invalid agent message')).toHaveLength(1);
    expect(mine.filter((l) => l.msg === 'closing agent channel: too many invalid messages')).toHaveLength(1);

    // A frame over maxPayload (1 MiB): the socket is dropped, the log gets one warning without a stack.
    const b = await channel();
    b.ws.send('x'.repeat(1024 * 1024 + 10));
    expect([1006, 1009]).toContain(await b.closed);
    await waitFor(() => logs.find((l) => l.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'));
    expect(logs.filter((l) => l.level >= 50)).toEqual([]);
    expect(logs.filter((l) => l.err?.stack)).toEqual([]);
    // The server still serves the host.
    const c = await channel();
    c.ws.close();
  });

  it('prunes events older than the retention and keeps the newest per object', async () => {
    await open({ eventRetentionDays: 7, maxEventsPerObject: 5, eventPruneIntervalMs: 300 });
    const daysAgo = (d: number, ms = 0) => new Date(Date.now() - d * 86_400_000 - ms).toISOString();
    const row = (object: string, createdAt: string) => ({
      name: `${object}-${randomUUID().slice(0, 8)}`,
      uid: randomUUID(),
      project: 'default',
      labels: '{}',
      annotations: '{}',
      generation: 1,
      resource_version: 1,
      created_at: createdAt,
      updated_at: createdAt,
      spec: JSON.stringify({ type: 'Normal', reason: 'Old', message: '', involvedObject: { kind: 'EdgeHost', name: object }, source: 'test' }),
      status: JSON.stringify({ count: 1, firstTimestamp: createdAt, lastTimestamp: createdAt }),
      involved_kind: 'EdgeHost',
      involved_name: object,
      involved_uid: null,
      event_time: createdAt,
      dedupe_key: null,
    });
    const chatty = Array.from({ length: 12 }, (_, i) => row('chatty', daysAgo(0, i * 1000)));
    await store!.db
      .insertInto('events')
      .values([row('quiet', daysAgo(8)), row('quiet', daysAgo(30)), row('quiet', daysAgo(6)), ...chatty])
      .execute();
    await waitFor(async () => (await eventsOf('chatty')).length === 5 && (await eventsOf('quiet')).length === 1, 10_000);
    expect((await eventsOf('quiet')).map((e) => e.created_at.slice(0, 10))).toEqual([daysAgo(6).slice(0, 10)]);
    // The newest five (smallest offsets) are the ones kept.
    expect((await eventsOf('chatty')).map((e) => e.name).sort()).toEqual(
      chatty
        .slice(0, 5)
        .map((r) => r.name)
        .sort(),
    );
  });
});
