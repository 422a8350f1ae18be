/** The outcome of one store check. */
export interface StoreCheck {
  ok: boolean;
  /** When it finished (ms since the epoch). */
  at: number;
  latencyMs: number;
  /** Why it failed. */
  error?: string;
}

export type Readiness =
  | { ready: true; ageMs: number; latencyMs: number }
  | { ready: false; reason: string; lastCheck?: { ok: boolean; ageMs: number; latencyMs: number }; lastSuccessAgeMs?: number };

export interface StoreHealthOptions {
  /** Pause between the end of one check and the start of the next. */
  intervalMs: number;
  /** A check not finished after this long fails. */
  timeoutMs: number;
  /** Told every outcome (metrics). */
  onCheck?: (check: StoreCheck) => void;
  now?: () => number;
}

/**
 * Checks the store in the background, one check at a time on a fixed interval, and keeps the last
 * outcome, so /readyz answers at once from memory: a probe that ran the check itself would wait as
 * long as the store takes, and every health checker (several load balancers, each checking every
 * replica) would add a query. Ready while the last check succeeded and finished within the
 * staleness bound (three intervals and a timeout: a stuck loop must not read as ready forever).
 */
export class StoreHealth {
  private last?: StoreCheck;
  private lastSuccessAt?: number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly ping: (timeoutMs: number) => Promise<void>,
    private readonly options: StoreHealthOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  get staleAfterMs(): number {
    return 3 * this.options.intervalMs + this.options.timeoutMs;
  }

  /** Runs the first check (so a server that just started answers ready at once), then one per interval. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  readiness(): Readiness {
    const now = this.now();
    const last = this.last;
    const lastCheck = last && { ok: last.ok, ageMs: now - last.at, latencyMs: last.latencyMs };
    const lastSuccessAgeMs = this.lastSuccessAt === undefined ? undefined : now - this.lastSuccessAt;
    if (!last) return { ready: false, reason: 'the store has not been checked yet' };
    if (!last.ok) return { ready: false, reason: `store unreachable: ${last.error}`, lastCheck, lastSuccessAgeMs };
    if (now - last.at > this.staleAfterMs) {
      return { ready: false, reason: `no store check finished in the last ${this.staleAfterMs} ms`, lastCheck, lastSuccessAgeMs };
    }
    return { ready: true, ageMs: now - last.at, latencyMs: last.latencyMs };
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.check().finally(() => this.schedule());
    }, this.options.intervalMs);
    // The loop never keeps the process alive on its own.
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const started = this.now();
    let timeout: NodeJS.Timeout | undefined;
    let result: StoreCheck;
    try {
      await Promise.race([
        this.ping(this.options.timeoutMs),
        new Promise((_, reject) => {
          timeout = setTimeout(() => reject(new Error(`no answer within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
        }),
      ]);
      result = { ok: true, at: this.now(), latencyMs: this.now() - started };
      this.lastSuccessAt = result.at;
    } catch (err) {
      result = { ok: false, at: this.now(), latencyMs: this.now() - started, error: (err as Error).message };
    } finally {
      clearTimeout(timeout);
    }
    this.last = result;
    this.options.onCheck?.(result);
  }
}
