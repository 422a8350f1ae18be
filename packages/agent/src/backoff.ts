import { setTimeout as delay } from 'node:timers/promises';

export interface BackoffOptions {
  /** Ceiling of the first delay. */
  baseMs: number;
  /** Ceiling of every delay. */
  capMs: number;
  random?: () => number;
}

/**
 * Exponential backoff with full jitter (delay uniform in [0, min(cap, base * 2^attempt)]): after a
 * server restart a thousand agents spread their reconnects instead of arriving in waves.
 */
export class Backoff {
  private attempt = 0;
  constructor(private readonly options: BackoffOptions) {}

  next(): number {
    const ceiling = Math.min(this.options.capMs, this.options.baseMs * 2 ** this.attempt);
    if (ceiling < this.options.capMs) this.attempt++;
    return Math.floor((this.options.random ?? Math.random)() * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Sleeps `ms`; resolves false (instead of throwing) when `signal` aborts first. */
export async function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
