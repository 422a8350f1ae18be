import type { Role, WatchMessage } from '@edgeplane/protocol';
import type { Change } from './change-bus.js';

/** What a subscriber needs of a WebSocket (ws's WebSocket fits; tests pass a fake). */
export interface WatchSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  readonly bufferedAmount: number;
  readonly readyState: number;
}

/** The credential a watch was opened with, so the hub can close it when that credential goes. */
export interface WatchOwner {
  user: string;
  userUid: string;
  role: Role;
  tokenName: string;
  /** sha256 of the API token secret (never the secret itself), for re-checking it against the store. */
  tokenHash: string;
}

/** Close code of a watch whose credential no longer holds (token deleted or expired, user deleted, disabled or demoted). */
export const WATCH_CLOSE_UNAUTHORIZED = 4401;
const OPEN = 1;

export interface SubscriberLimits {
  /** Changes held for one watcher before it is told to resync instead. */
  maxQueued: number;
  /** Serialized bytes held for one watcher before it is told to resync instead. */
  maxQueuedBytes: number;
  /** Bytes the socket may hold unsent before we stop handing it more. */
  maxBufferedBytes: number;
  /** How often a blocked watcher is retried. */
  retryMs: number;
}
export const DEFAULT_LIMITS: SubscriberLimits = { maxQueued: 2000, maxQueuedBytes: 4 * 1024 * 1024, maxBufferedBytes: 1024 * 1024, retryMs: 25 };

/**
 * One watcher: a bounded queue in front of its socket. A client that reads slower than objects change
 * would otherwise make the server buffer without limit; instead, when the queue is full, everything
 * queued is dropped and the client gets one RESYNC telling it to re-list. Memory per watcher stays at
 * most `maxQueued` changes / `maxQueuedBytes` plus the socket's `maxBufferedBytes`.
 */
export class WatchSubscriber {
  private queue: string[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private resyncPending = false;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private closed = false;

  constructor(
    private socket: WatchSocket,
    readonly kinds: ReadonlySet<string>,
    private limits: SubscriberLimits = DEFAULT_LIMITS,
    readonly owner?: WatchOwner,
  ) {}

  wants(kind: string): boolean {
    return this.kinds.has(kind);
  }

  /**
   * Queues a change for this watcher; never blocks and never grows past the limit. `data` is the
   * change serialized, which the hub does once per change for all its watchers.
   */
  offer(change: Change, data?: string): void {
    if (this.closed || !this.kinds.has(change.kind)) return;
    if (this.resyncPending) {
      this.dropped++;
      return;
    }
    data ??= JSON.stringify(change satisfies WatchMessage);
    if (this.queue.length >= this.limits.maxQueued || this.queuedBytes + data.length > this.limits.maxQueuedBytes) {
      this.dropped += this.queue.length + 1;
      this.queue = [];
      this.queuedBytes = 0;
      this.resyncPending = true;
    } else {
      this.queue.push(data);
      this.queuedBytes += data.length;
    }
    this.schedule();
  }

  /** Drops what is queued and tells the client to re-list (changes may have been missed). */
  resync(): void {
    if (this.closed) return;
    this.dropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.resyncPending = true;
    this.schedule();
  }

  /** Sends a control message ahead of queued changes. */
  sendNow(msg: WatchMessage): void {
    if (!this.closed && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(msg));
  }

  get queued(): number {
    return this.queue.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops delivery at once (nothing queued is sent) and closes the socket with `code` and `reason`. */
  closeWith(code: number, reason: string): void {
    if (this.closed) return;
    this.close();
    // A WebSocket close reason is at most 123 bytes.
    this.socket.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.scheduled || this.timer) return;
    this.scheduled = true;
    // Batch everything published in this tick into one pump.
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed || this.socket.readyState !== OPEN) return;
    const room = () => this.socket.bufferedAmount < this.limits.maxBufferedBytes;
    let i = 0;
    while (i < this.queue.length && room()) {
      this.queuedBytes -= this.queue[i].length;
      this.socket.send(this.queue[i++]);
    }
    this.queue = i === this.queue.length ? [] : this.queue.slice(i);
    if (this.resyncPending && this.queue.length === 0 && room()) {
      this.socket.send(JSON.stringify({ type: 'RESYNC', kinds: [...this.kinds], dropped: this.dropped } satisfies WatchMessage));
      this.resyncPending = false;
      this.dropped = 0;
    }
    if (this.queue.length > 0 || this.resyncPending) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, this.limits.retryMs);
      this.timer.unref();
    }
  }
}
