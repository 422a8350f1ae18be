import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { acquireLease, releaseLease, renewLease } from './controller-lease.repository.js';

export interface LeasedWork {
  /** Starts the controllers (this replica now holds the lease). */
  start(): void;
  /** Stops them and waits for passes in progress (the lease was lost, or the server stops). */
  stop(): Promise<void>;
}

/**
 * Runs `work` on exactly one replica of a shared store at a time: the holder of a lease row. The
 * holder renews every third of the TTL; a holder that cannot renew stops its controllers before its
 * lease can have run out, and a holder that died (kill -9) is replaced by another replica once its
 * lease expired, so the controllers move within the TTL and a third. Each new holder raises the
 * epoch; renewals name it, so a holder that lost the lease cannot take it back unawares.
 */
export class ControllerLease {
  private timer?: NodeJS.Timeout;
  private epoch?: number;
  private heldUntil = 0;
  private ticking: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly holder: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
    readonly name = 'controllers',
  ) {}

  private work: LeasedWork = { start() {}, stop: async () => {} };

  /** This replica's id as the lease names it. */
  get holderId(): string {
    return this.holder;
  }

  /** Whether this replica holds the lease now (and the TTL has not run out since it last renewed). */
  get held(): boolean {
    return this.epoch !== undefined && Date.now() < this.heldUntil;
  }

  get currentEpoch(): number | undefined {
    return this.epoch;
  }

  /** Starts competing for the lease; `work` runs while this replica holds it. */
  async start(work: LeasedWork): Promise<void> {
    this.work = work;
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.ttlMs / 3);
    this.timer.unref();
  }

  private tick(): Promise<void> {
    this.ticking = this.ticking.then(async () => {
      const now = Date.now();
      const expires = new Date(now + this.ttlMs).toISOString();
      try {
        if (this.epoch === undefined) {
          const epoch = await acquireLease(this.db, this.name, this.holder, new Date(now).toISOString(), expires);
          if (epoch === undefined) return;
          this.epoch = epoch;
          this.heldUntil = now + this.ttlMs;
          this.log.info({ epoch }, 'controller lease taken; starting the controllers');
          this.work.start();
        } else if (await renewLease(this.db, this.name, this.holder, this.epoch, expires)) {
          this.heldUntil = now + this.ttlMs;
        } else {
          await this.lose('controller lease lost to another replica');
        }
      } catch (err) {
        this.log.warn({ err }, 'controller lease check failed');
        // Unsure whether it still holds: stop before the lease could have run out and been taken.
        if (this.epoch !== undefined && Date.now() >= this.heldUntil - this.ttlMs / 3) await this.lose('controller lease could not be renewed');
      }
    });
    return this.ticking;
  }

  private async lose(why: string): Promise<void> {
    this.log.warn({ epoch: this.epoch }, `${why}; stopping the controllers`);
    this.epoch = undefined;
    await this.work.stop();
  }

  /** Stops the controllers and releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
    const epoch = this.epoch;
    if (epoch === undefined) return;
    this.epoch = undefined;
    await this.work.stop();
    await releaseLease(this.db, this.name, this.holder, epoch, new Date().toISOString()).catch((err) =>
      this.log.warn({ err }, 'releasing the controller lease failed'),
    );
  }
}
