import { connect as tcp } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, register, TestDevice } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

// The transport (timeouts, connection cap) sits in front of the store: one dialect is enough here.
const REQUEST_TIMEOUT_MS = 2000;
const CONNECTION_TIMEOUT_MS = 3000;
const ATTACKERS = 200;

/** A raw TCP client that sends the headers of a large registration, then one body byte every 500 ms. */
function trickle(port: number): Promise<{ closedAfterMs: number; response: string }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = tcp(port, '127.0.0.1');
    let response = '';
    let tick: NodeJS.Timeout | undefined;
    // Bounded: a server that never closes fails the test instead of trickling forever.
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error('the server kept a trickling connection open for 20 s'));
    }, 20_000);
    socket.on('connect', () => {
      socket.write('POST /agent/v1/register HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{');
      tick = setInterval(() => socket.writable && socket.write(' '), 500);
    });
    socket.on('data', (d) => (response += d));
    socket.on('error', () => {}); // a reset is one way of being closed
    socket.on('close', () => {
      clearInterval(tick);
      clearTimeout(giveUp);
      resolve({ closedAfterMs: Date.now() - started, response });
    });
  });
}

describe('slow clients', () => {
  let t: TestServer;
  let token: string;

  beforeAll(async () => {
    t = await testServer('sqlite', { requestTimeoutMs: REQUEST_TIMEOUT_MS, connectionTimeoutMs: CONNECTION_TIMEOUT_MS });
    token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'slow' }, spec: { autoApprove: true } })).body.status.token;
  });
  afterAll(async () => t?.close());

  it('closes trickled request bodies at the request timeout while health checks and agent channels go on', async () => {
    const device = await TestDevice.create();
    const reg = await register(t.url, await device.registerBody(token));
    expect(reg.status).toBe(200);
    const agent = await connect(t.url, await device.connectToken(reg.body.hostName));
    let agentClosedAt = 0;
    agent.ws.on('close', () => (agentClosedAt = Date.now()));
    // A watch on a kind nothing changes stays silent: only an idle timeout could end it.
    const watch = new WebSocket(`${t.url.replace(/^http/, 'ws')}/api/v1/watch?kinds=projects`, { headers: { authorization: `Bearer ${t.admin}` } });
    await new Promise((resolve, reject) => watch.once('open', resolve).once('error', reject));
    let watchClosedAt = 0;
    watch.on('close', () => (watchClosedAt = Date.now()));

    const port = Number(new URL(t.url).port);
    const attackStarted = Date.now();
    const attack = Promise.all(Array.from({ length: ATTACKERS }, () => trickle(port)));
    // Health checks keep being answered while the trickling connections are open.
    const health: number[] = [];
    let attacking = true;
    const probes = (async () => {
      while (attacking) {
        const res = await fetch(`${t.url}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        health.push(res?.status ?? 0);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const results = await attack;
    attacking = false;
    await probes;

    const slowest = Math.max(...results.map((r) => r.closedAfterMs));
    // Node checks deadlines every requestTimeout/4 here; 2.5 s of slack covers that and a busy machine.
    expect(slowest).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(slowest).toBeLessThan(REQUEST_TIMEOUT_MS + 2500);
    for (const r of results) expect(r.response).toMatch(/^HTTP\/1\.1 408 [\s\S]*"code":"RequestTimeout"/);
    expect(health.length).toBeGreaterThan(5);
    expect(health.every((s) => s === 200)).toBe(true);

    // The agent channel and the watch opened before the attack outlive both the request and the connection timeout.
    await new Promise((r) => setTimeout(r, Math.max(0, attackStarted + CONNECTION_TIMEOUT_MS + 1500 - Date.now())));
    expect(agentClosedAt).toBe(0);
    expect(watchClosedAt).toBe(0);
    expect(agent.ws.readyState).toBe(agent.ws.OPEN);
    watch.close();
    const pong = new Promise((r) => agent.ws.once('pong', r));
    agent.ws.ping();
    await pong;
    agent.ws.close();
  });

  it('stops reading a request whose headers never end', async () => {
    const started = Date.now();
    const res = await new Promise<string>((resolve) => {
      const socket = tcp(Number(new URL(t.url).port), '127.0.0.1');
      let out = '';
      let tick: NodeJS.Timeout | undefined;
      socket.on('connect', () => {
        socket.write('GET /healthz HTTP/1.1\r\nHost: edge\r\n');
        tick = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 300);
      });
      socket.on('data', (d) => (out += d));
      socket.on('error', () => {});
      socket.on('close', () => {
        clearInterval(tick);
        resolve(out);
      });
    });
    expect(Date.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS + 2500);
    expect(res).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe('connection cap', () => {
  it('closes connections past --max-connections on accept and serves again once they are gone', async () => {
    const t = await testServer('sqlite', { maxConnections: 20 });
    const port = Number(new URL(t.url).port);
    try {
      const sockets = await Promise.all(
        Array.from(
          { length: 30 },
          () =>
            new Promise<{ closed: Promise<void>; destroy(): void }>((resolve) => {
              const s = tcp(port, '127.0.0.1');
              s.on('error', () => {});
              const closed = new Promise<void>((r) => s.on('close', () => r()));
              s.on('connect', () => resolve({ closed, destroy: () => s.destroy() }));
            }),
        ),
      );
      // The kernel accepts all 30; the server closes the 10 past its cap at once.
      const closedSoon = await Promise.all(sockets.map((s) => Promise.race([s.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 1000))])));
      expect(closedSoon.filter(Boolean).length).toBe(10);
      for (const s of sockets) s.destroy();
      await Promise.all(sockets.map((s) => s.closed));
      expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});
