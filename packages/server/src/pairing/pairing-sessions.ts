import { isIPv6 } from 'node:net';
import { EdgeplaneError, PAIRING_TTL_SECONDS } from '@edgeplane/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../store/db.js';
import { deleteDeadPairings } from './pairing.repository.js';

export interface PairingCaps {
  /** Pending (unclaimed, unexpired) sessions this server accepts in all; more starts answer 429. */
  maxPending: number;
  /** Pending sessions opened from one source address (req.ip); more starts from it answer 429. */
  maxPendingPerSource: number;
  /** How often sessions nobody can use any more are deleted. */
  pruneIntervalMs: number;
}

export const DEFAULT_PAIRING_CAPS: PairingCaps = { maxPending: 10_000, maxPendingPerSource: 20, pruneIntervalMs: 30_000 };

/** Longest a held long-poll waits before it reads the store again (a claim made on another replica wakes nobody here). */
export const POLL_RECHECK_MS = 5_000;

/**
 * The source a start counts against: an IPv4 address, or the /64 of an IPv6 address (one site or
 * host usually owns a whole /64, so single addresses would make the per-source cap free to dodge).
 */
export function sourceKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1];
  if (!isIPv6(ip)) return ip.slice(0, 64);
  const [head, tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** The one long-poll held for a session; a claim wakes it. */
class HeldPoll {
  private woken = false;
  private resolveWait?: () => void;

  constructor(readonly until: number) {}

  wake(): void {
    if (this.resolveWait) this.resolveWait();
    else this.woken = true; // woken while it was reading the store: the next wait returns at once
  }

  /** Resolves after `ms`, on a wake, or on abort, whichever comes first. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.woken || signal.aborted) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.resolveWait = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.resolveWait = done;
    });
  }
}

/**
 * Pairing state of one server instance (never module-level: two servers in one process must not
 * wake each other's polls): the long-polls held per session, the claims that wake them, the caps
 * on pending sessions, and the periodic prune of dead sessions. Shared by the agent routes (start,
 * poll) and the API routes (claim) through the Fastify instance (`app.pairings`).
 */
export class PairingSessions {
  readonly caps: PairingCaps;
  private held = new Map<string, HeldPoll>();
  private admitting: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private readonly closing = new AbortController();

  constructor(
    private readonly db: Db,
    private readonly log: FastifyBaseLogger,
    caps: Partial<PairingCaps> = {},
  ) {
    this.caps = { ...DEFAULT_PAIRING_CAPS, ...Object.fromEntries(Object.entries(caps).filter(([, v]) => v !== undefined)) };
  }

  start(): void {
    this.timer = setInterval(() => void this.prune(), this.caps.pruneIntervalMs);
    this.timer.unref();
  }

  /** Stops the prune and ends held long-polls (each answers with the state it has). */
  stop(): void {
    clearInterval(this.timer);
    this.closing.abort();
  }

  /** Aborted when the server closes. */
  get closed(): AbortSignal {
    return this.closing.signal;
  }

  /**
   * Runs a start's cap check and insert one at a time in this process, so concurrent starts cannot
   * all pass the count before any inserts (a transaction would not stop that on PostgreSQL's read
   * committed). Several replicas may each overshoot by their in-flight starts, no more.
   */
  admit<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.admitting.then(fn, fn);
    this.admitting = run.catch(() => {});
    return run;
  }

  /**
   * Registers the one long-poll of a session until `until` (epoch ms). A second poll while one is
   * held is refused with RateLimited: its Retry-After is the time the held one has left.
   */
  hold(id: string, until: number): { wait(ms: number, signal: AbortSignal): Promise<void>; release(): void } {
    const current = this.held.get(id);
    if (current) {
      const retryAfterSeconds = Math.max(1, Math.ceil((current.until - Date.now()) / 1000));
      throw new EdgeplaneError('RateLimited', `a long-poll is already waiting for this pairing session; retry in ${retryAfterSeconds}s`, {
        retryAfterSeconds,
      });
    }
    const poll = new HeldPoll(until);
    this.held.set(id, poll);
    return {
      wait: (ms, signal) => poll.wait(ms, signal),
      release: () => {
        if (this.held.get(id) === poll) this.held.delete(id);
      },
    };
  }

  /** A session changed (claimed): its held poll, if any, reads the store again and answers. */
  changed(id: string): void {
    this.held.get(id)?.wake();
  }

  /** Deletes pending sessions past expiry and used ones past their registration window. */
  async prune(): Promise<number> {
    const now = Date.now();
    try {
      const n = await deleteDeadPairings(this.db, new Date(now).toISOString(), new Date(now - PAIRING_TTL_SECONDS * 1000).toISOString());
      if (n) this.log.debug({ pairings: n }, 'deleted dead pairing sessions');
      return n;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'pruning pairing sessions failed; will retry');
      return 0;
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This server's pairing sessions (see PairingSessions); decorated by buildApp. */
    pairings: PairingSessions;
  }
}
