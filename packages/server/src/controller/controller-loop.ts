import type { FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';

/**
 * Drives a controller's reconcile pass: every `intervalMs`, and at once when nudged. Never runs two
 * passes at the same time; a nudge during a pass runs exactly one more pass right after it, so a
 * change that arrives mid-pass is never missed. Shared by the cluster, virt and rollout controllers.
 */
export class ControllerLoop {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stoppedFlag = true;

  constructor(
    private readonly name: string,
    private readonly pass: () => Promise<unknown>,
    private readonly log: Logger | FastifyBaseLogger,
    private readonly intervalMs: number,
  ) {}

  /** True before start() and after stop(); long passes check it to end early. */
  get stopped(): boolean {
    return this.stoppedFlag;
  }

  start(): void {
    this.stoppedFlag = false;
    this.timer = setInterval(() => this.nudge(), this.intervalMs);
    this.timer.unref();
    this.nudge();
  }

  /** Stops the timer and waits for a pass in progress to finish. */
  async stop(): Promise<void> {
    this.stoppedFlag = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Runs a pass now, or right after the current one. */
  nudge(): void {
    if (this.stoppedFlag) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .then(() => {})
      .catch((err) => this.log.error({ err }, `${this.name} pass failed`))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stoppedFlag) {
          this.again = false;
          this.nudge();
        }
      });
  }
}

/**
 * Base of the server's controllers: start/stop/nudge run `pass()` through one ControllerLoop,
 * created on first use (subclass parameter properties are not set yet while base fields initialize).
 */
export abstract class Controller {
  private loopInstance?: ControllerLoop;

  /** One reconcile pass over everything this controller owns. */
  protected abstract pass(): Promise<unknown>;
  /** Name for logs, logger and pass interval. */
  protected abstract loopSettings(): { name: string; log: Logger | FastifyBaseLogger; intervalMs: number };

  private get loop(): ControllerLoop {
    if (!this.loopInstance) {
      const { name, log, intervalMs } = this.loopSettings();
      this.loopInstance = new ControllerLoop(name, () => this.pass(), log, intervalMs);
    }
    return this.loopInstance;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Runs a pass now, or right after the current one. */
  nudge(): void {
    this.loop.nudge();
  }

  /** True before start() and after stop(); long passes check it to end early. */
  protected get stopped(): boolean {
    return this.loop.stopped;
  }
}
