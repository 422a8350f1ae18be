import { AgentEventMessage } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from './atomic-file.js';

export type QueuedEvent = z.infer<typeof AgentEventMessage>;

export const DEFAULT_EVENT_QUEUE_LIMIT = 1000;

/**
 * Events waiting to reach the server, persisted so they survive a restart while the site is offline.
 * Bounded: when full the oldest event is dropped (the newest say most about the current state).
 * An event leaves the queue once the socket accepted it; the protocol has no ack, so an event in a
 * socket that dies can be lost, and the agent-side id lets the server store a re-sent event once.
 */
export class EventQueue {
  private items: QueuedEvent[] = [];
  private readonly inFlight = new Set<string>();
  private writing?: Promise<void>;
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
    private readonly limit = DEFAULT_EVENT_QUEUE_LIMIT,
  ) {}

  /** Adds the events persisted by a previous run in front of any queued since. */
  async load(): Promise<void> {
    let raw: unknown;
    try {
      raw = await readJsonFile(this.file);
    } catch (err) {
      this.logger.warn({ err, file: this.file }, 'ignoring unreadable event queue');
      return;
    }
    if (raw === undefined) return;
    const parsed = z.array(AgentEventMessage).safeParse(raw);
    if (!parsed.success) {
      this.logger.warn({ file: this.file }, 'ignoring invalid event queue');
      return;
    }
    const known = new Set(this.items.map((e) => e.id));
    this.items = [...parsed.data.filter((e) => !known.has(e.id)), ...this.items];
    this.trim();
  }

  get size(): number {
    return this.items.length;
  }

  push(event: QueuedEvent): void {
    this.items.push(event);
    this.trim();
    this.persist();
  }

  /** Events not currently being sent, oldest first; marks them in flight. */
  take(): QueuedEvent[] {
    const out = this.items.filter((e) => !this.inFlight.has(e.id));
    for (const e of out) this.inFlight.add(e.id);
    return out;
  }

  /** The socket took the event: drop it. */
  sent(id: string): void {
    this.inFlight.delete(id);
    this.items = this.items.filter((e) => e.id !== id);
    this.persist();
  }

  /** Sending failed: keep it for the next connection. */
  unsent(id: string): void {
    this.inFlight.delete(id);
  }

  /** Resolves when the file reflects the queue. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private trim(): void {
    const excess = this.items.length - this.limit;
    if (excess > 0) {
      this.logger.warn({ dropped: excess }, 'event queue full, dropping oldest events');
      for (const e of this.items.slice(0, excess)) this.inFlight.delete(e.id);
      this.items = this.items.slice(excess);
    }
  }

  /** Coalesces writes: at most one in flight, followed by at most one more with the latest queue. */
  private persist(): void {
    this.dirty = true;
    this.writing ??= (async () => {
      while (this.dirty) {
        this.dirty = false;
        try {
          await writeFileAtomic(this.file, JSON.stringify(this.items));
        } catch (err) {
          this.logger.warn({ err, file: this.file }, 'cannot persist event queue');
        }
      }
      this.writing = undefined;
    })();
  }
}
