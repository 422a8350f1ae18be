import { randomInt } from 'node:crypto';

/**
 * Back-pressure for registration storms: at most `limit` registrations run at once, at most
 * `maxQueue` more wait for a slot, and the rest are refused at once (429 RateLimited) with a
 * Retry-After spread over a few seconds so refused devices do not come back as one wave. Agents
 * honour Retry-After and retry until they are registered, so a refusal delays, never loses, one.
 */
export class RegistrationGate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  refused = 0;

  constructor(
    readonly limit: number,
    readonly maxQueue: number = limit * 16,
    private readonly retryAfterMaxSeconds = 3,
  ) {}

  /** Every slot busy and the queue full: a registration arriving now would be refused. */
  get saturated(): boolean {
    return this.active >= this.limit && this.waiting.length >= this.maxQueue;
  }

  /** Counts a registration refused before it reached run() (see agent.routes.ts: refused before its body is read). */
  refuse(): void {
    this.refused++;
  }

  /** Runs `fn` when a slot is free; undefined (and nothing run) when saturated: answer 429. */
  async run<T>(fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    if (this.active >= this.limit) {
      if (this.waiting.length >= this.maxQueue) {
        this.refuse();
        return undefined;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    try {
      return { value: await fn() };
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter; `active` only drops when nobody waits.
      if (next) next();
      else this.active--;
    }
  }

  /** Seconds a refused device should wait: 1..retryAfterMaxSeconds, random, to spread the retries. */
  retryAfterSeconds(): number {
    return 1 + randomInt(this.retryAfterMaxSeconds);
  }

  get inFlight(): number {
    return this.active;
  }
}
