import { join } from 'node:path';
import { PAIRING_CODE_ALPHABET, WATCH_PROTOCOL } from '@edgeplane/protocol';
import { startServer } from '@edgeplane/server';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { runCli } from '../support/cli-process.js';
import { DIALECTS, testStore } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';
import { type TestServer, testServer } from '../support/server.js';

function openWatch(t: TestServer, kinds: string): Promise<{ ws: WebSocket; messages: any[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/api/v1/watch?kinds=${kinds}`, [WATCH_PROTOCOL, `bearer.${t.admin}`]);
    const messages: any[] = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      messages.push(m);
      if (m.type === 'READY') resolve({ ws, messages });
    });
    ws.on('error', reject);
  });
}

const randomCode = () => Array.from({ length: 8 }, () => PAIRING_CODE_ALPHABET[Math.floor(Math.random() * PAIRING_CODE_ALPHABET.length)]).join('');

let tokens = 0;
async function autoToken(t: TestServer): Promise<string> {
  return (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: `auto-${++tokens}` }, spec: { autoApprove: true } })).body.status.token;
}

/**
 * Two servers in one process, each on its own store, hold the same host name for the same device.
 * Anything one of them shares through module state (a global emitter, a cache, a limiter) shows up on
 * the other: its watchers would hear the other's writes, its agents the other's actions.
 */
describe.each(DIALECTS)('two server instances in one process on %s', (dialect) => {
  let a: TestServer;
  let b: TestServer;
  let device: TestDevice;
  let host: string;
  beforeAll(async () => {
    [a, b] = await Promise.all([testServer(dialect), testServer(dialect)]);
    device = await TestDevice.create();
    const onB = await register(b.url, await device.registerBody(await autoToken(b)));
    expect(onB.status).toBe(200);
    host = onB.body.hostName;
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it("a write on one is not seen by the other's watchers", async () => {
    const watch = await openWatch(b, 'edgehosts,events');
    // Registration announces the host by name to the store it wrote to; B has a host of that name.
    const onA = await register(a.url, await device.registerBody(await autoToken(a)));
    expect(onA.body.hostName).toBe(host);
    const ch = await connect(a.url, await device.connectToken(host));
    await waitFor(async () => (await a.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity === 'online');
    // The hello's inventory and agent version change A's host status (announced by name, like registration).
    ch.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-2' }));
    await waitFor(() => ch.messages.some((m) => m.type === 'welcome'));
    await waitFor(async () => (await a.api('GET', `/api/v1/edgehosts/${host}`)).body.status.agentVersion === 'test-2');
    // A marker through the same announce path on B: a second device registering there.
    const other = await TestDevice.create();
    const marker = (await register(b.url, await other.registerBody(await autoToken(b)))).body.hostName;
    await waitFor(() => watch.messages.some((m) => m.kind === 'EdgeHost' && m.object.metadata.name === marker));
    expect(watch.messages.filter((m) => m.object?.metadata?.name === host || m.object?.spec?.involvedObject?.name === host)).toEqual([]);
    ch.ws.close();
    watch.ws.close();
  });

  it("deleting the host on one does not touch the other's agent", async () => {
    const onA = await connect(a.url, await device.connectToken(host));
    const onB = await connect(b.url, await device.connectToken(host));
    const online = async (t: TestServer) => (await t.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity === 'online';
    await waitFor(() => online(b));
    const closedA = new Promise<number>((r) => onA.ws.on('close', (code) => r(code)));
    expect((await a.api('DELETE', `/api/v1/edgehosts/${host}`)).status).toBeLessThan(300);
    expect(await closedA).not.toBe(1000);
    // B's channel stays open and keeps being served: its heartbeat is answered, its host stays online.
    onB.ws.ping();
    await new Promise((r) => onB.ws.once('pong', r));
    expect(onB.ws.readyState).toBe(WebSocket.OPEN);
    expect(await online(b)).toBe(true);
    onB.ws.close();
  });

  it("exhausting a rate limit on one leaves the other's untouched", async () => {
    const claim = (t: TestServer) => t.api('POST', `/api/v1/pairings/${randomCode()}/claim`, {});
    let last = 0;
    for (let i = 0; i < 30 && last !== 429; i++) last = (await claim(a)).status;
    expect(last).toBe(429);
    const onB = await claim(b);
    expect(onB.status).not.toBe(429);
    expect(onB.body.error.code).toBe('PairingCodeInvalid');
  });
});

describe.each(DIALECTS)('a server that cannot listen on %s', (dialect) => {
  it('refuses to start when its port is taken, and leaves nothing running: no database connection, no log line after', async () => {
    const holder = await testServer(dialect);
    const store = await testStore(dialect);
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const connections = async () => {
      if (!store.databaseUrl) return 0;
      const c = new pg.Client({ connectionString: store.databaseUrl });
      await c.connect();
      try {
        const r = await c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
        return r.rows[0].n as number;
      } finally {
        await c.end();
      }
    };
    try {
      const port = Number(new URL(holder.url).port);
      await expect(startServer({ host: '127.0.0.1', port, dataDir: store.dataDir, databaseUrl: store.databaseUrl, logger })).rejects.toMatchObject({
        code: 'EADDRINUSE',
      });
      const after = lines.length;
      // The hub's sweeps and flushes, the replica lease renewal and the LISTEN connection ran against
      // this store; stopped, they neither write nor log.
      await new Promise((r) => setTimeout(r, 2500));
      expect(lines.slice(after)).toEqual([]);
      await waitFor(async () => (await connections()) === 0, 5000);
      // The data dir is free again: a server starts on it.
      const again = await startServer({
        host: '127.0.0.1',
        port: 0,
        dataDir: store.dataDir,
        databaseUrl: store.databaseUrl,
        logger: pino({ level: 'silent' }),
      });
      await again.close();
    } finally {
      await holder.close();
      await store.cleanup();
    }
  });
});

describe('one server per SQLite data dir', () => {
  const quiet = pino({ level: 'silent' });

  it('refuses a second server on the same data dir in the same process, and starts again after the first stopped', async () => {
    const first = await testServer('sqlite');
    try {
      const before = await first.api('GET', '/api/v1/edgehosts');
      await expect(startServer({ host: '127.0.0.1', port: 0, dataDir: first.store.dataDir, logger: quiet })).rejects.toMatchObject({
        code: 'DataDirInUse',
        message: expect.stringContaining(first.store.dataDir),
      });
      // The refused start changed nothing: the first server serves the same store.
      expect(await first.api('GET', '/api/v1/edgehosts')).toEqual(before);
      expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
      await first.restart();
      expect((await first.api('GET', '/api/v1/edgehosts')).status).toBe(200);
    } finally {
      await first.close();
    }
  });

  it('refuses a second server while another process holds the dir, and takes it once that process was killed', async () => {
    const store = await testStore('sqlite');
    const dataDir = join(store.dataDir, 'server');
    const url = `http://127.0.0.1:${await freePort()}`;
    const other = runCli(['server', '--host', '127.0.0.1', '--port', new URL(url).port, '--data-dir', dataDir, '--log-level', 'warn']);
    try {
      await other.waitForOutput(/Its API token is in/);
      const second = runCli(['server', '--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', dataDir, '--log-level', 'warn']);
      const exitCode = await new Promise((r) => (second.proc.exitCode !== null ? r(second.proc.exitCode) : second.proc.once('exit', r)));
      expect(exitCode).toBe(1);
      expect(second.output()).toContain('Error (DataDirInUse): another edgeplane server is running on the data dir');
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      // kill -9 leaves no stale lock behind: the kernel drops SQLite's file lock with the process.
      await other.stop('SIGKILL');
      const next = await startServer({ host: '127.0.0.1', port: 0, dataDir, logger: quiet });
      await next.close();
    } finally {
      await other.stop('SIGKILL');
      await store.cleanup();
    }
  });
});
