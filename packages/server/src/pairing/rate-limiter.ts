/**
 * A token bucket per key, in memory: enough to stop guessing of pairing codes on one replica (a code
 * has 32^8 = 10^12 values and lives 15 minutes; a few attempts a minute make guessing hopeless).
 */
export class RateLimiter {
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
    const b = this.buckets.get(key) ?? { tokens: this.capacity, at: t };
    b.tokens = Math.min(this.capacity, b.tokens + ((t - b.at) / 1000) * this.refillPerSecond);
    b.at = t;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.refillPerSecond));
  }

  private prune(t: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + ((t - b.at) / 1000) * this.refillPerSecond >= this.capacity) this.buckets.delete(k);
  }
}
