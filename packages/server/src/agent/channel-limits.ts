import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../http/metrics.js';
import { RateLimiter } from '../pairing/rate-limiter.js';

/**
 * At most one log line per key and window: an agent that misbehaves in a loop (a flood of events, a
 * stream of invalid frames) must not flood the server log. `allow` says whether to log now and how
 * many lines were held back since the last one.
 */
export class LogThrottle {
  private last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  allow(key: string): { log: boolean; held: number } {
    const t = this.now();
    if (this.last.size > 50_000) for (const [k, v] of this.last) if (t - v.at >= this.windowMs) this.last.delete(k);
    const e = this.last.get(key);
    if (e && t - e.at < this.windowMs) {
      e.held++;
      return { log: false, held: e.held };
    }
    this.last.set(key, { at: t, held: 0 });
    return { log: true, held: e?.held ?? 0 };
  }
}

export interface EventBudgetOptions {
  /** Events a host may send at once. */
  burst: number;
  /** Events per second a host gets back. */
  perSecond: number;
}

export const DEFAULT_EVENT_BUDGET: EventBudgetOptions = { burst: 50, perSecond: 1 };

/**
 * A token bucket of agent events per host (kept across reconnects, so reconnecting buys nothing).
 * Events over it are dropped: counted in a metric, and logged once per host and minute.
 */
export class EventBudget {
  private readonly buckets: RateLimiter;
  private readonly warnings = new LogThrottle();

  constructor(
    private readonly metrics: Metrics,
    readonly options: EventBudgetOptions = DEFAULT_EVENT_BUDGET,
  ) {
    // A bucket per host that sent events lately; sized for a large fleet so forgetting full buckets stays rare.
    this.buckets = new RateLimiter(options.burst, options.perSecond, Date.now, 200_000);
  }

  /** True when `host` may record one more event now; false when it is dropped (and says so, throttled). */
  take(host: string, log: FastifyBaseLogger, onWarn?: () => void): boolean {
    if (this.buckets.take(host) === 0) return true;
    this.metrics.agentEventsDropped.inc();
    const w = this.warnings.allow(host);
    if (w.log) {
      log.warn(
        { host, burst: this.options.burst, perSecond: this.options.perSecond, droppedSinceLastWarning: w.held },
        'agent sends events faster than allowed; dropping the excess',
      );
      onWarn?.();
    }
    return false;
  }
}
