import type { Channel } from './channel.js';
import type { EventQueue } from './event-queue.js';

/** Below the server's event budget per host (burst 50, 1 per second), so nothing queued is dropped. */
const EVENT_SEND_BURST = 40;
const EVENT_SEND_PER_SECOND = 0.9;

/**
 * Sends queued events at the pace the server accepts (it drops events over a per-host budget of 50
 * at once, then 1 per second): a backlog queued while offline drains instead of being dropped. A
 * local token bucket; what it holds back is sent by a timer on the channel current then.
 */
export class EventPacer {
  private tokens = EVENT_SEND_BURST;
  private tokensAt = Date.now();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly events: EventQueue,
    /** The agent's current channel, if any. */
    private readonly channel: () => Channel | undefined,
    private readonly stopped: () => boolean,
  ) {}

  flush(): void {
    const channel = this.channel();
    if (!channel) return;
    const now = Date.now();
    this.tokens = Math.min(EVENT_SEND_BURST, this.tokens + ((now - this.tokensAt) / 1000) * EVENT_SEND_PER_SECOND);
    this.tokensAt = now;
    const batch = this.events.take();
    const allowed = Math.floor(this.tokens);
    for (const [i, event] of batch.entries()) {
      if (i >= allowed) {
        this.events.unsent(event.id);
        continue;
      }
      this.tokens--;
      const accepted = channel.send(event, (err) => (err ? this.events.unsent(event.id) : this.events.sent(event.id)));
      if (!accepted) this.events.unsent(event.id);
    }
    if (batch.length > allowed && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (!this.stopped()) this.flush();
      }, 1000 / EVENT_SEND_PER_SECOND);
      this.timer.unref?.();
    }
  }

  /** Drops a pending paced send (the agent stops; a restart flushes on its next welcome). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
