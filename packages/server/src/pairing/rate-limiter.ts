import type { Executor } from '../store/db.js';
import { storeScope } from '../store/store-scope.js';
import { deleteFullBuckets, lockBucket, writeBucket } from './rate-limit.repository.js';

/** Takes one token for a key: 0 when allowed, else the seconds to wait for the next token. */
export interface Limiter {
  take(key: string): number | Promise<number>;
}

/** Refills a bucket to `t` and takes a token if there is one; returns the new bucket and the wait. */
function step(b: { tokens: number; at: number }, t: number, capacity: number, refillPerSecond: number) {
  const tokens = Math.min(capacity, b.tokens + (Math.max(0, t - b.at) / 1000) * refillPerSecond);
  if (tokens >= 1) return { tokens: tokens - 1, wait: 0 };
  return { tokens, wait: Math.max(1, Math.ceil((1 - tokens) / refillPerSecond)) };
}

/**
 * The limiter for a store: on PostgreSQL, where several replicas may serve behind one load balancer,
 * buckets live in the store so an address gets the same budget whichever replica it reaches; on
 * SQLite (one server process) in memory, as cheap as before. `name` keeps limiters' keys apart.
 */
export function rateLimiterFor(db: Executor, name: string, capacity: number, refillPerSecond: number): Limiter {
  return storeScope(db)?.dialect === 'postgres' ? new StoreRateLimiter(db, name, capacity, refillPerSecond) : new RateLimiter(capacity, refillPerSecond);
}

/** Token buckets in the store, shared by every replica; each take is one short transaction on the bucket's row. */
export class StoreRateLimiter implements Limiter {
  private nextPruneAt = 0;
  constructor(
    private readonly db: Executor,
    private readonly name: string,
    private readonly capacity: number,
    private readonly refillPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {}

  async take(key: string): Promise<number> {
    const t = this.now();
    const prefix = `${this.name}:`;
    if (t >= this.nextPruneAt) {
      this.nextPruneAt = t + 60_000;
      await deleteFullBuckets(this.db, prefix, t - (this.capacity / this.refillPerSecond) * 1000);
    }
    const k = `${prefix}${key}`.slice(0, 200);
    return this.db.transaction().execute(async (trx) => {
      const next = step(await lockBucket(trx, k, this.capacity, t), t, this.capacity, this.refillPerSecond);
      await writeBucket(trx, k, next.tokens, t);
      return next.wait;
    });
  }
}

/**
 * A token bucket per key, in memory: enough to stop guessing of pairing codes on one server (a code
 * has 32^8 = 10^12 values and lives 15 minutes; a few attempts a minute make guessing hopeless).
 */
export class RateLimiter implements Limiter {
  private buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly capacity: number,
    private readonly refillPerSecond: number,
    private readonly now: () => number = Date.now,
    /** Past this many keys, full buckets are forgotten (a full bucket is the same as no bucket). */
    private readonly maxKeys = 50_000,
  ) {}

  /** Takes one token for `key`; returns 0 when allowed, else the seconds to wait for the next token. */
  take(key: string): number {
    const t = this.now();
    if (this.buckets.size > this.maxKeys) this.prune(t);
    const next = step(this.buckets.get(key) ?? { tokens: this.capacity, at: t }, t, this.capacity, this.refillPerSecond);
    this.buckets.set(key, { tokens: next.tokens, at: t });
    return next.wait;
  }

  private prune(t: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + ((t - b.at) / 1000) * this.refillPerSecond >= this.capacity) this.buckets.delete(k);
  }
}
