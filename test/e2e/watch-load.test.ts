import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

function openWatch(t: TestServer, query: string): Promise<{ ws: WebSocket; messages: any[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/api/v1/watch${query}`, { headers: { authorization: `Bearer ${t.admin}` } });
    const messages: any[] = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      messages.push(m);
      if (m.type === 'READY') resolve({ ws, messages });
    });
    ws.on('error', reject);
  });
}

// Watch streams under load: thousands of changes while one watcher reads along and another
// stops reading. The reader gets every change; the stalled one is not disconnected and, once it reads
// again, is told to RESYNC (bounded memory per watcher) and then gets new changes again.
describe('watch stream under load', () => {
  const N = 2000;
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer('sqlite');
  });
  afterAll(async () => t?.close());

  it(`delivers ${N} changes to a reading watcher and resyncs a stalled one`, async () => {
    const fast = await openWatch(t, '?kinds=sites');
    const slow = await openWatch(t, '?kinds=sites');
    // Stop reading from the socket: the server's send buffer for this watcher fills up.
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const names = Array.from({ length: N }, (_, i) => `load-${String(i).padStart(5, '0')}`);
    // 8 KiB per object: 16 MiB in all, more than socket buffers and the per-watcher bounds hold.
    const note = 'x'.repeat(8192);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < names.length) {
          const name = names[next++];
          const r = await t.api('POST', '/api/v1/sites', { metadata: { name, labels: { load: 'yes' }, annotations: { note } }, spec: { timezone: 'UTC' } });
          expect(r.status).toBe(201);
        }
      }),
    );
    const perSecond = (N / (performance.now() - t0)) * 1000;
    const added = () => fast.messages.filter((m) => m.type === 'ADDED').length;
    await waitFor(() => added() === N || fast.messages.some((m) => m.type === 'RESYNC'), 30_000).catch((err) => {
      throw new Error(
        `${err.message}: fast watcher has ${added()} ADDED of ${N}, ${fast.messages.length} messages, types ${[...new Set(fast.messages.map((m) => m.type))]}`,
      );
    });
    expect(fast.messages.filter((m) => m.type === 'RESYNC')).toEqual([]);
    expect(new Set(fast.messages.filter((m) => m.type === 'ADDED').map((m) => m.object.metadata.name)).size).toBe(N);
    expect(perSecond).toBeGreaterThan(0);

    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const resync = await waitFor(() => slow.messages.find((m) => m.type === 'RESYNC'), 30_000);
    expect(resync).toMatchObject({ kinds: ['Site'] });
    expect(resync.dropped).toBeGreaterThan(0);
    expect(slow.ws.readyState).toBe(WebSocket.OPEN);
    // After the resync, changes flow again to the watcher that fell behind.
    await t.api('POST', '/api/v1/sites', { metadata: { name: 'after-load' }, spec: {} });
    await waitFor(() => slow.messages.some((m) => m.type === 'ADDED' && m.object.metadata.name === 'after-load'), 10_000);
    fast.ws.close();
    slow.ws.close();
  }, 120_000);
});
