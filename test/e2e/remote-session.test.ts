import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/device.js';
import { operator, startAgent } from '../support/remote-session.js';
import { type TestServer, testServer } from '../support/server.js';

type AgentHandle = Awaited<ReturnType<typeof startAgent>>;

describe('remote sessions through a real agent and PTY', () => {
  let ts: TestServer;
  let a: AgentHandle;
  /** Bytes of the simulated host's notice line before a command's own output (set by the exec test). */
  let noticeBytes = 0;

  beforeAll(async () => {
    ts = await testServer('sqlite');
    a = await startAgent(ts);
  });
  afterAll(async () => {
    await a?.cleanup();
    await ts?.close();
  });

  it('runs a shell: echo, tty, stty size after a resize, exit code, and a recording that replays it', async () => {
    const op = await operator(ts, a.host, { kind: 'shell', reason: 'investigate disk alarm', cols: 80, rows: 24 });
    await op.session.ready();
    op.session.input('echo hello-$((6*7))\n');
    await op.see(/hello-42/);
    op.session.input('tty\n');
    await op.see(/\/dev\/pts\/\d+/);
    op.session.resize(123, 41);
    op.session.input('stty size\n');
    await op.see(/41 123/);
    op.session.input('exit 3\n');
    const end = await op.end;
    expect(end).toMatchObject({ code: 3, reason: 'exit' });

    const s = await ts.api('GET', `/api/v1/remotesessions/${op.id}`);
    expect(s.body.status).toMatchObject({ phase: 'ended', exitCode: 3, endReason: 'exit' });
    expect(s.body.spec).toMatchObject({ host: a.host, kind: 'shell', reason: 'investigate disk alarm', user: 'admin' });

    const rec = await fetch(`${ts.url}/api/v1/remotesessions/${op.id}/recording`, { headers: { authorization: `Bearer ${ts.admin}` } });
    expect(rec.status).toBe(200);
    const lines = (await rec.text()).trim().split('\n');
    const header = JSON.parse(lines[0]);
    expect(header).toMatchObject({ version: 2, width: 80, height: 24 });
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    const replay = events
      .filter((e) => e[1] === 'o')
      .map((e) => e[2])
      .join('');
    expect(replay).toContain('hello-42');
    expect(replay).toMatch(/41 123/);
    expect(events.some((e) => e[1] === 'r' && e[2] === '123x41')).toBe(true);
    expect(events.some((e) => e[1] === 'i' && e[2].includes('stty size'))).toBe(true);
    for (let i = 1; i < events.length; i++) expect(events[i][0]).toBeGreaterThanOrEqual(events[i - 1][0]);
  });

  it('runs a command: stdout, stderr and the exit code pass through; stdin reaches it', async () => {
    const op = await operator(ts, a.host, { kind: 'exec', reason: 'check services', command: ['sh', '-c', 'echo out; echo err >&2; exit 7'] });
    expect(await op.end).toMatchObject({ code: 7, reason: 'exit' });
    expect(op.stdout()).toBe('out\n');
    // A simulated host first says, on stderr, that the command runs in the simulator's sandbox.
    const notice = /^simulated host: this command runs in the simulator's bubblewrap sandbox .* as \S+\n/.exec(op.stderr())?.[0];
    expect(notice).toBeDefined();
    noticeBytes = Buffer.byteLength(notice!);
    expect(op.stderr().slice(notice!.length)).toBe('err\n');

    const cat = await operator(ts, a.host, { kind: 'exec', reason: 'pipe test', command: ['cat'] });
    await cat.session.ready();
    cat.session.input('line one\n');
    await cat.see(/line one/);
    cat.session.eof();
    expect(await cat.end).toMatchObject({ code: 0 });

    const missing = await operator(ts, a.host, { kind: 'exec', reason: 'typo', command: ['no-such-command-xyz'] });
    expect((await missing.end).code).toBe(127);
  });

  it('refuses a viewer, an operator without the permission, and a request without a reason', async () => {
    const mk = async (name: string, spec: Record<string, unknown>) => {
      expect((await ts.api('POST', '/api/v1/users', { metadata: { name }, spec })).status).toBe(201);
      const t = await ts.api('POST', '/api/v1/apitokens', { metadata: { name: `${name}-t` }, spec: { user: name } });
      return t.body.status.token as string;
    };
    const viewer = await mk('vera', { role: 'viewer' });
    const plainOp = await mk('otto', { role: 'operator' });
    const grantedOp = await mk('olga', { role: 'operator', permissions: ['hosts:remote-shell'] });
    const body = { kind: 'exec', reason: 'look around', command: ['true'] };
    for (const token of [viewer, plainOp]) {
      const r = await ts.api('POST', `/api/v1/edgehosts/${a.host}/sessions`, body, { token });
      expect(r.status).toBe(403);
      expect(r.body.error).toMatchObject({ code: 'Forbidden', details: { permission: 'hosts:remote-shell' } });
    }
    const noReason = await ts.api('POST', `/api/v1/edgehosts/${a.host}/sessions`, { kind: 'shell' });
    expect(noReason.status).toBe(400);
    expect(noReason.body.error.code).toBe('ValidationFailed');
    expect(noReason.body.error.details.issues[0].path).toBe('reason');
    const unknownHost = await ts.api('POST', '/api/v1/edgehosts/nope/sessions', body);
    expect(unknownHost.status).toBe(404);

    const op = await operator(ts, a.host, body as never, grantedOp);
    expect(await op.end).toMatchObject({ code: 0 });
    // Another user cannot read that session's recording or terminate it, but an admin can.
    const other = await mk('omar', { role: 'operator', permissions: ['hosts:remote-shell'] });
    expect((await ts.api('POST', `/api/v1/remotesessions/${op.id}/terminate`, undefined, { token: other })).status).toBe(403);
    expect((await ts.api('POST', `/api/v1/remotesessions/${op.id}/terminate`)).status).toBe(200);
  });

  it('terminate ends a running session on both ends', async () => {
    const op = await operator(ts, a.host, { kind: 'exec', reason: 'long job', command: ['sleep', '30'] });
    await waitFor(async () => (await ts.api('GET', `/api/v1/remotesessions/${op.id}`)).body.status.phase === 'active');
    expect(a.agent.troubleshoot.openSessions).toBe(1);
    const r = await ts.api('POST', `/api/v1/remotesessions/${op.id}/terminate`);
    expect(r.status).toBe(200);
    expect(r.body.status).toMatchObject({ phase: 'ended', endReason: 'terminated' });
    expect(await op.end).toMatchObject({ reason: 'terminated' });
    await waitFor(() => a.agent.troubleshoot.openSessions === 0, 5000);
  });

  it('ends sessions at the hard TTL and after the idle timeout', async () => {
    const started = Date.now();
    const ttl = await operator(ts, a.host, { kind: 'exec', reason: 'ttl test', command: ['sleep', '30'], ttlSeconds: 1 });
    expect(await ttl.end).toMatchObject({ reason: 'ttl' });
    expect(Date.now() - started).toBeLessThan(5000);
    const idle = await operator(ts, a.host, { kind: 'shell', reason: 'idle test', idleTimeoutSeconds: 1 });
    expect(await idle.end).toMatchObject({ reason: 'idle' });
    await waitFor(() => a.agent.troubleshoot.openSessions === 0, 5000);
  });

  it("streams the agent's log and named log files, with line limits", async () => {
    const op = await operator(ts, a.host, { kind: 'logs', reason: 'read logs', logs: { source: 'agent', lines: 3, follow: false } });
    expect(await op.end).toMatchObject({ code: 0 });
    const lines = op.stdout().trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0])).toHaveProperty('msg');
    const unknown = await operator(ts, a.host, { kind: 'logs', reason: 'read logs', logs: { source: 'nginx', lines: 3, follow: false } });
    const end = await unknown.end;
    expect(end.refused).toBe(true);
    expect(end.reason).toMatch(/unknown log source "nginx"/);
  });

  it('follows a named log file: lines appended after the session opened arrive until it is terminated', async () => {
    const logFile = join(a.dataDir, 'follow-app.log');
    writeFileSync(logFile, 'old 1\nold 2\n');
    const f = await startAgent(ts, { logFiles: { app: logFile } });
    try {
      const op = await operator(ts, f.host, { kind: 'logs', reason: 'watch app', logs: { source: 'app', lines: 1, follow: true } });
      await op.see(/old 2\n/);
      appendFileSync(logFile, 'new 3\n');
      await op.see(/new 3\n/);
      expect(op.stdout()).not.toContain('old 1');
      expect((await ts.api('POST', `/api/v1/remotesessions/${op.id}/terminate`)).status).toBe(200);
      expect(await op.end).toMatchObject({ reason: 'terminated' });
    } finally {
      await f.cleanup();
    }
  });

  it.skipIf(process.getuid?.() !== 0)('runs sessions as the configured local user (agent as root)', async () => {
    const u = await startAgent(ts, { runAs: 'nobody' });
    try {
      const op = await operator(ts, u.host, { kind: 'exec', reason: 'who am i', command: ['id', '-un'] });
      expect(await op.end).toMatchObject({ code: 0 });
      expect(op.stdout()).toBe('nobody\n');
      expect((await ts.api('GET', `/api/v1/remotesessions/${op.id}`)).body.status.runAs).toBe('nobody');
    } finally {
      await u.cleanup();
    }
  });

  it.skipIf(process.getuid?.() === 0)('refuses a configured run-as user the agent cannot switch to (agent not root)', async () => {
    const u = await startAgent(ts, { runAs: 'nobody' });
    try {
      const op = await operator(ts, u.host, { kind: 'exec', reason: 'who am i', command: ['id', '-un'] });
      const end = await op.end;
      expect(end.refused).toBe(true);
      expect(end.reason).toMatch(/troubleshoot.runAs is "nobody"/);
    } finally {
      await u.cleanup();
    }
  });

  it('a host whose site disabled remote shell refuses, and the operator sees why', async () => {
    const off = await startAgent(ts, { remoteShell: false });
    try {
      const op = await operator(ts, off.host, { kind: 'shell', reason: 'try anyway' });
      const end = await op.end;
      expect(end.refused).toBe(true);
      expect(end.reason).toMatch(/remote shell is disabled/);
      const s = await ts.api('GET', `/api/v1/remotesessions/${op.id}`);
      expect(s.body.status).toMatchObject({ phase: 'refused', endReason: 'refused' });
      expect(s.body.status.message).toMatch(/disabled/);
    } finally {
      await off.cleanup();
    }
  });

  it('writes session start and end to a hash-chained audit log that detects an edited entry', async () => {
    const list = await ts.api('GET', '/api/v1/audit?limit=1000');
    expect(list.status).toBe(200);
    const items = list.body.items as { action: string; reason: string; details: Record<string, unknown>; actor: string; target: string }[];
    const start = items.find((e) => e.action === 'session.start' && e.reason === 'check services');
    expect(start).toMatchObject({ actor: 'admin', target: `edgehosts/${a.host}` });
    const end = items.find((e) => e.action === 'session.end' && e.details.session === start!.details.session);
    expect(end?.details).toMatchObject({ exitCode: 7, endReason: 'exit', bytesOut: 8 + noticeBytes });
    expect(items.some((e) => e.action === 'registrationtoken.create')).toBe(true);
    expect((await ts.api('GET', '/api/v1/audit/verify')).body).toMatchObject({ ok: true, entries: items.length });
  });
});
