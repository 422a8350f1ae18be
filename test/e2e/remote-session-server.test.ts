import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttachedSession } from '../../packages/cli/src/remote-session-client.js';
import { DIALECTS } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/** The server side of remote sessions against a hand-driven agent, on both store dialects. */
describe.each(DIALECTS)('session broker on %s', (dialect) => {
  let ts: TestServer;
  let host: string;
  let dev: TestDevice;
  // biome-ignore lint/suspicious/noExplicitAny: frames are checked field by field in the assertions
  let agent: { ws: import('ws').WebSocket; messages: any[] };
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const sendAgent = (m: unknown) => agent.ws.send(JSON.stringify(m));
  const connectAgent = async () => {
    const c = await connect(ts.url, await dev.connectToken(host));
    c.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    await waitFor(() => c.messages.some((m) => m.type === 'welcome'));
    await waitFor(async () => (await ts.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity === 'online');
    return c;
  };
  const create = (body: Record<string, unknown>) =>
    ts.api('POST', `/api/v1/edgehosts/${host}/sessions`, { kind: 'exec', reason: 'broker test', command: ['x'], ...body });
  const openFrame = (id: string) => waitFor(() => agent.messages.find((m) => m.type === 'session.open' && m.id === id));

  beforeAll(async () => {
    ts = await testServer(dialect);
    const tok = await ts.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } });
    dev = await TestDevice.create();
    host = (await register(ts.url, await dev.registerBody(tok.body.status.token))).body.hostName;
    expect((await create({})).body.error.code).toBe('HostOffline');
    agent = await connectAgent();
  });
  afterAll(async () => {
    agent?.ws.close();
    await ts?.close();
  });

  it('answers with the attach URL and a one-time ticket; opens on the agent when the operator attaches', async () => {
    const r = await create({ ttlSeconds: 60 });
    expect(r.status).toBe(201);
    const id = r.body.metadata.name;
    expect(r.body.status.url).toBe(`${ts.url.replace('http', 'ws')}/api/v1/remotesessions/${id}/attach`);
    expect(r.body.status.attachTicket).toMatch(/^epat_/);
    expect((await ts.api('GET', `/api/v1/remotesessions/${id}`)).body.status.attachTicket).toBeUndefined();
    const op = new AttachedSession(ts.url, id, { ticket: r.body.status.attachTicket });
    const open = await openFrame(id);
    expect(open).toMatchObject({ kind: 'exec', command: ['x'], window: 256 * 1024 });
    // The ticket was used: a second attach is refused.
    const again = new AttachedSession(ts.url, id, { ticket: r.body.status.attachTicket });
    await expect(again.done).rejects.toMatchObject({ code: 'Unauthenticated' });
    sendAgent({ type: 'session.opened', id });
    const out: string[] = [];
    op.on('output', (s, d) => out.push(`${s}:${d}`));
    sendAgent({ type: 'session.output', id, data: b64('hello'), seq: 0 });
    sendAgent({ type: 'session.output', id, data: b64('oops'), seq: 1, stream: 'stderr' });
    // The server acks output once the operator socket took it.
    await waitFor(() => agent.messages.filter((m) => m.type === 'session.ack' && m.id === id).reduce((n, m) => n + m.bytes, 0) === 9);
    sendAgent({ type: 'session.exit', id, code: 4, signal: null, reason: 'exit' });
    expect(await op.done).toEqual({ code: 4, signal: null, reason: 'exit' });
    expect(out).toEqual(['stdout:hello', 'stderr:oops']);
    expect((await ts.api('GET', `/api/v1/remotesessions/${id}`)).body.status).toMatchObject({ phase: 'ended', exitCode: 4, bytesOut: 9 });
  });

  it('enforces TTL and idle timeout itself when the agent stays silent, and tells the agent to close', async () => {
    for (const [limits, reason] of [
      [{ ttlSeconds: 1 }, 'ttl'],
      [{ idleTimeoutSeconds: 1 }, 'idle'],
    ] as const) {
      const r = await create(limits);
      const id = r.body.metadata.name;
      const op = new AttachedSession(ts.url, id, { token: ts.admin });
      await openFrame(id);
      expect(await op.done).toMatchObject({ reason });
      await waitFor(() => agent.messages.find((m) => m.type === 'session.close' && m.id === id && m.reason === reason));
    }
  });

  it('ignores frames for sessions of other hosts, ends a session whose agent overruns its window, and one whose agent disconnects', async () => {
    const r = await create({});
    const id = r.body.metadata.name;
    const op = new AttachedSession(ts.url, id, { token: ts.admin });
    await openFrame(id);
    sendAgent({ type: 'session.opened', id });
    op.pause(); // a stalled operator: nothing is acked
    const chunk = b64('x'.repeat(32 * 1024));
    for (let i = 0; i < 48; i++) sendAgent({ type: 'session.output', id, data: chunk, seq: i });
    op.resume();
    expect(await op.done).toMatchObject({ reason: 'flow-control-violation' });

    const r2 = await create({});
    const id2 = r2.body.metadata.name;
    const op2 = new AttachedSession(ts.url, id2, { token: ts.admin });
    await openFrame(id2);
    sendAgent({ type: 'session.opened', id: id2 });
    sendAgent({ type: 'session.output', id: 'rs-000000000000', data: b64('x'), seq: 0 });
    await waitFor(() => agent.messages.find((m) => m.type === 'session.close' && m.id === 'rs-000000000000'));
    agent.ws.close();
    expect(await op2.done).toMatchObject({ reason: 'agent-disconnected' });
    agent = await connectAgent();
  });

  it('validates operator frames and refuses a second operator connection', async () => {
    const r = await create({});
    const id = r.body.metadata.name;
    const op = new AttachedSession(ts.url, id, { token: ts.admin });
    await openFrame(id);
    const second = new AttachedSession(ts.url, id, { token: ts.admin });
    await expect(second.done).rejects.toMatchObject({ code: 'SessionEnded' });
    op.input('hi');
    op.resize(0 as number, 5); // invalid: ignored with an error frame, session goes on
    await waitFor(() => agent.messages.find((m) => m.type === 'session.input' && m.id === id && m.data === b64('hi')));
    expect((await ts.api('DELETE', `/api/v1/remotesessions/${id}`)).body.error.code).toBe('InvalidState');
    const patch = await ts.api('PATCH', `/api/v1/remotesessions/${id}`, { spec: { reason: 'rewritten' } }, { contentType: 'application/merge-patch+json' });
    expect(patch.body.error.code).toBe('MethodNotAllowed');
    op.terminate();
    expect(await op.done).toMatchObject({ reason: 'terminated' });
    expect((await ts.api('GET', `/api/v1/remotesessions/${id}`)).body.status).toMatchObject({ phase: 'ended', endReason: 'terminated', bytesIn: 2 });
  });
});
