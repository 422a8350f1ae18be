/**
 * SIMULATION. The service manager of a SimDevice. No process runs: Kubernetes services (k3s,
 * k3s-agent, rke2-server, rke2-agent, kubelet) are simulated units (sim-units.ts) that act on the
 * configuration the agent wrote against the simulated cluster registry; any other service simply
 * counts as running once started. Enabled and running services are kept in
 * `<root>/var/lib/edgeplane-sim/services.json` so a restarted simulated agent sees them.
 */
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../atomic-file.js';
import { ServiceError, type ServiceManager } from './services.js';
import { type SimKubernetes, SimRefusal, simKubernetes } from './sim-kubernetes.js';
import { SIM_UNITS, type SimUnitContext } from './sim-units.js';

export const SIM_SERVICES_FILE = 'var/lib/edgeplane-sim/services.json';

interface ServicesState {
  enabled: string[];
  active: string[];
  /** Why a service last failed to start (what `systemctl status` / the journal would show). */
  failed: Record<string, string>;
}

export class SimServiceManager implements ServiceManager {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly registry: SimKubernetes = simKubernetes,
  ) {}

  enable(name: string): Promise<void> {
    return this.update((s) => {
      if (!s.enabled.includes(name)) s.enabled.push(name);
    });
  }

  async start(name: string): Promise<void> {
    if (await this.isActive(name)) return;
    await this.run(name);
  }

  async restart(name: string): Promise<void> {
    await this.stop(name);
    await this.run(name);
  }

  async stop(name: string): Promise<void> {
    await SIM_UNITS[name]?.stop(this.ctx());
    await this.update((s) => {
      s.active = s.active.filter((n) => n !== name);
    });
  }

  async isActive(name: string): Promise<boolean> {
    return (await this.state()).active.includes(name);
  }

  /**
   * A simulated reboot: every running service stops (its node goes NotReady), then the enabled
   * ones start again as systemd would at boot. A service that fails to start stays failed.
   */
  async powerCycle(): Promise<void> {
    const { active, enabled } = await this.state();
    for (const name of active) await this.stop(name);
    for (const name of enabled) await this.run(name).catch(() => {});
  }

  /** Why the service last failed to start, if it did (the simulated journal). */
  async failure(name: string): Promise<string | undefined> {
    return (await this.state()).failed[name];
  }

  private async run(name: string): Promise<void> {
    try {
      await SIM_UNITS[name]?.start(this.ctx());
    } catch (err) {
      const reason = (err as Error).message;
      await this.update((s) => {
        s.active = s.active.filter((n) => n !== name);
        s.failed[name] = reason;
      });
      const retryable = err instanceof SimRefusal ? err.retryable : true;
      throw new ServiceError(name, `Job for ${name}.service failed (simulated): ${reason}`, retryable);
    }
    await this.update((s) => {
      if (!s.active.includes(name)) s.active.push(name);
      delete s.failed[name];
    });
  }

  private ctx(): SimUnitContext {
    return { root: this.root, registry: this.registry };
  }

  private async state(): Promise<ServicesState> {
    const raw = (await readJsonFile(join(this.root, SIM_SERVICES_FILE))) as Partial<ServicesState> | undefined;
    return { enabled: raw?.enabled ?? [], active: raw?.active ?? [], failed: raw?.failed ?? {} };
  }

  /** Read-modify-write of the state file, one at a time. */
  private update(change: (s: ServicesState) => void): Promise<void> {
    const next = this.queue.then(async () => {
      const s = await this.state();
      change(s);
      await writeFileAtomic(join(this.root, SIM_SERVICES_FILE), `${JSON.stringify(s)}\n`, 0o644);
    });
    this.queue = next.catch(() => {});
    return next;
  }
}
