import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Db } from '../store/db.js';
import { type Change, ChangeBus } from './change-bus.js';
import { type WatchSocket, WatchSubscriber } from './subscriber.js';
import { WatchHub } from './watch-hub.js';

/** A socket whose unsent bytes the test controls, like a client that stopped reading. */
class SlowSocket implements WatchSocket {
  sent: any[] = [];
  bufferedAmount = 0;
  readyState = 1;
  closedWith: [number?, string?] | undefined;
  close(code?: number, reason?: string) {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
    this.bufferedAmount += data.length;
  }
}

const change = (i: number, kind = 'EdgeHost'): Change => ({
  type: 'MODIFIED',
  kind,
  object: { kind, metadata: { name: `h${i}`, resourceVersion: String(i) } },
});
const tick = () => new Promise((r) => setTimeout(r, 40));

describe('WatchSubscriber', () => {
  it('delivers changes of the watched kinds in order and skips others', async () => {
    const socket = new SlowSocket();
    const sub = new WatchSubscriber(socket, new Set(['EdgeHost']), { maxQueued: 10, maxQueuedBytes: 1e6, maxBufferedBytes: 1e6, retryMs: 5 });
    sub.offer(change(1));
    sub.offer(change(2, 'Event'));
    sub.offer(change(3));
    await tick();
    expect(socket.sent.map((m) => m.object.metadata.name)).toEqual(['h1', 'h3']);
    sub.close();
  });

  it('holds at most maxQueued changes for a client that does not read, then sends one RESYNC', async () => {
    const socket = new SlowSocket();
    socket.bufferedAmount = 10_000; // the client stopped reading: nothing more fits
    const sub = new WatchSubscriber(socket, new Set(['EdgeHost']), { maxQueued: 100, maxQueuedBytes: 1e6, maxBufferedBytes: 1000, retryMs: 5 });
    for (let i = 0; i < 5000; i++) {
      sub.offer(change(i));
      expect(sub.queued).toBeLessThanOrEqual(100);
    }
    await tick();
    expect(socket.sent).toEqual([]);
    socket.bufferedAmount = 0; // the client catches up
    await tick();
    expect(socket.sent).toHaveLength(1);
    expect(socket.sent[0]).toMatchObject({ type: 'RESYNC', kinds: ['EdgeHost'] });
    expect(socket.sent[0].dropped).toBeGreaterThan(0);
    // After the resync, changes flow again.
    sub.offer(change(9999));
    await tick();
    expect(socket.sent.at(-1).object.metadata.name).toBe('h9999');
    sub.close();
  });
});

describe('WatchHub fan-out', () => {
  it('serializes each change once for all its watchers, and not at all for a kind nobody watches', async () => {
    const bus = new ChangeBus();
    const hub = new WatchHub({} as Db, bus, () => [], pino({ level: 'silent' }));
    const sockets = Array.from({ length: 50 }, () => new SlowSocket());
    const limits = { maxQueued: 10, maxQueuedBytes: 1e6, maxBufferedBytes: 1e6, retryMs: 5 };
    const removers = sockets.map((s) => hub.add(new WatchSubscriber(s, new Set(['EdgeHost']), limits)));
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      bus.publish(change(1));
      bus.publish(change(2, 'Event'));
      expect(stringify).toHaveBeenCalledTimes(1);
    } finally {
      stringify.mockRestore();
    }
    await tick();
    for (const s of sockets) expect(s.sent).toEqual([change(1)]);
    for (const r of removers) r();
    hub.stop();
  });
});
