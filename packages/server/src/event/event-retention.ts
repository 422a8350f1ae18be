import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { deleteEventsBefore, deleteOldestEventsOf, objectsWithMoreEvents } from './event.repository.js';

export interface EventRetentionOptions {
  /** Events older than this (by the server's recording time) are deleted; default 7 days. */
  maxAgeSeconds: number;
  /** At most this many events are kept per involved object (the newest); default 1000. */
  maxPerObject: number;
  /** How often the prune runs (also once at start); default 10 minutes. */
  intervalMs: number;
}

export const DEFAULT_EVENT_RETENTION: EventRetentionOptions = { maxAgeSeconds: 7 * 86_400, maxPerObject: 1000, intervalMs: 10 * 60_000 };

/**
 * Deletes old events, so agents (which report events) and controllers cannot grow the store without
 * bound. Owned by one server instance: started with it, stopped on close. Several replicas pruning
 * the same rows is harmless (deletes of the same rows).
 */
export class EventRetention {
  readonly options: EventRetentionOptions;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    options: Partial<EventRetentionOptions> = {},
  ) {
    this.options = { ...DEFAULT_EVENT_RETENTION, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  }

  start(): void {
    void this.prune();
    this.timer = setInterval(() => void this.prune(), this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass: by age, then per object. Runs are serialized; errors are logged and retried next time. */
  prune(): Promise<void> {
    this.running = this.running.then(async () => {
      try {
        const before = new Date(Date.now() - this.options.maxAgeSeconds * 1000).toISOString();
        const old = await deleteEventsBefore(this.db, before);
        let excess = 0;
        // Bounded passes: a huge backlog is worked off over several runs instead of blocking one.
        for (let pass = 0; pass < 10; pass++) {
          const objects = await objectsWithMoreEvents(this.db, this.options.maxPerObject);
          for (const o of objects) excess += await deleteOldestEventsOf(this.db, o.kind, o.name, this.options.maxPerObject);
          if (objects.length < 100) break;
        }
        if (old || excess) this.log.info({ old, excess, before }, 'pruned events');
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'pruning events failed; will retry');
      }
    });
    return this.running;
  }
}
