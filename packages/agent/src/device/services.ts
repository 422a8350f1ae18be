import { type Exec, ExecError } from './exec.js';

/**
 * The device's service manager (systemd units on an Edgeplane OS device). Names are unit names
 * without `.service`. Every method resolves once the service manager accepted the request and
 * rejects with a ServiceError saying why otherwise.
 */
export interface ServiceManager {
  /** Start at boot. Idempotent. */
  enable(name: string): Promise<void>;
  /**
   * Start now; a no-op when already running. May resolve once the start is under way (systemd:
   * queued): whether the service came up is observed through its effect (the node's Ready state).
   */
  start(name: string): Promise<void>;
  /** Stop and start again (picks up a changed configuration); like start, may resolve once under way. */
  restart(name: string): Promise<void>;
  stop(name: string): Promise<void>;
  /** True while the service runs. */
  isActive(name: string): Promise<boolean>;
}

/**
 * A service that failed to start or stop. `retryable` is false when the service itself reported a
 * refusal that repeating the same configuration cannot fix (e.g. a rejected join token).
 */
export class ServiceError extends Error {
  constructor(
    readonly service: string,
    message: string,
    readonly retryable = true,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** systemd through `systemctl`, run with the device's exec. */
export class SystemdServiceManager implements ServiceManager {
  constructor(private readonly exec: Exec) {}

  enable(name: string): Promise<void> {
    return this.run(name, 'enable');
  }

  // --no-block: k3s and rke2 are Type=notify units with no start timeout, so a blocking start would
  // wait as long as the node cannot reach its server. The manager polls the node's Ready state instead.
  start(name: string): Promise<void> {
    return this.run(name, 'start', '--no-block');
  }

  restart(name: string): Promise<void> {
    return this.run(name, 'restart', '--no-block');
  }

  stop(name: string): Promise<void> {
    return this.run(name, 'stop');
  }

  async isActive(name: string): Promise<boolean> {
    try {
      // Exit status 0 means active; anything else (inactive, failed, unknown unit) is not running.
      await this.exec('systemctl', ['is-active', '--quiet', unit(name)]);
      return true;
    } catch (err) {
      if (err instanceof ExecError) return false;
      throw err;
    }
  }

  private async run(name: string, verb: string, ...flags: string[]): Promise<void> {
    try {
      await this.exec('systemctl', [verb, ...flags, unit(name)], { timeoutMs: 2 * 60_000 });
    } catch (err) {
      const detail = err instanceof ExecError ? err.stderr.trim() : (err as Error).message;
      // A unit the OS image does not have will not appear by retrying.
      const missing = /not found|does not exist|No such file/i.test(detail);
      throw new ServiceError(name, `systemctl ${verb} ${unit(name)} failed: ${detail} (see journalctl -u ${unit(name)})`, !missing);
    }
  }
}

function unit(name: string): string {
  return name.endsWith('.service') ? name : `${name}.service`;
}
