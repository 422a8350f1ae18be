/**
 * SIMULATION. The service manager of a SimDevice. No process runs: Kubernetes services (k3s,
 * k3s-agent, rke2-server, rke2-agent, kubelet) are simulated units (sim-units.ts) that act on the
 * configuration the agent wrote against the simulated cluster registry; any other service simply
 * counts as running once started. Enabled and running services are kept in
 * `<root>/var/lib/edgeplane-sim/services.json` so a restarted simulated agent sees them.
 * The simulated services live in this process: a new SimServiceManager (a simulator started again
 * on the same data dir) is a machine powered on again, so it first starts the enabled services, as
 * systemd does at boot (a simulated kubelet posts Ready again); see powerOn.
 */
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../../atomic-file.js';
import { ServiceError, type ServiceManager } from '../services.js';
import { type SimClusterRegistry, SimRefusal, simKubernetes } from './sim-kubernetes.js';
import { SIM_UNITS, type SimUnitContext } from './sim-units.js';

export const SIM_SERVICES_FILE = 'var/lib/edgeplane-sim/services.json';

interface ServicesState {
  enabled: string[];
  active: string[];
  /** Why a service last failed to start (what `systemctl status` / the journal would show). */
  failed: Record<string, string>;
  /** Warnings a service logged at its last start (the simulated journal). */
  journal?: Record<string, string[]>;
}

export class SimServiceManager implements ServiceManager {
  private queue: Promise<unknown> = Promise.resolve();
  private poweredOn?: Promise<void>;

  /**
   * `root`: the device files the units read the configuration from; `stateRoot`: where services.json
   * (and the simulation's other records) live, default `root` (a writable directory when `root` is a
   * read-only OS, as in a guest whose Kubernetes is simulated).
   */
  constructor(
    private readonly root: string,
    private readonly registry: SimClusterRegistry = simKubernetes,
    private readonly stateRoot: string = root,
  ) {}

  async enable(name: string): Promise<void> {
    await this.powerOn();
    return this.update((s) => {
      if (!s.enabled.includes(name)) s.enabled.push(name);
    });
  }

  async start(name: string): Promise<void> {
    await this.powerOn();
    if (await this.isActive(name)) return;
    await this.run(name);
  }

  async restart(name: string): Promise<void> {
    await this.powerOn();
    await this.stop(name);
    await this.run(name);
  }

  async stop(name: string): Promise<void> {
    await this.powerOn();
    await SIM_UNITS[name]?.stop(this.ctx());
    await this.update((s) => {
      s.active = s.active.filter((n) => n !== name);
    });
  }

  async isActive(name: string): Promise<boolean> {
    await this.powerOn();
    return (await this.state()).active.includes(name);
  }

  /**
   * A simulated reboot: every running service stops (its node goes NotReady), then the enabled
   * ones start again as systemd would at boot. A service that fails to start stays failed.
   */
  async powerCycle(): Promise<void> {
    await this.powerOn();
    const { active, enabled } = await this.state();
    for (const name of active) await this.stop(name);
    for (const name of enabled) await this.run(name).catch(() => {});
  }

  /** Why the service last failed to start, if it did (the simulated journal). */
  async failure(name: string): Promise<string | undefined> {
    await this.powerOn();
    return (await this.state()).failed[name];
  }

  /**
   * Once per instance, before anything else: what services.json calls active ran in a process that
   * is gone, so nothing runs; the enabled services start (a failing one stays failed, as at boot).
   * Without this a restarted simulator's kubelets never posted Ready again.
   */
  powerOn(): Promise<void> {
    this.poweredOn ??= (async () => {
      const { active, enabled } = await this.state();
      if (active.length === 0 && enabled.length === 0) return;
      await this.update((s) => {
        s.active = [];
      });
      for (const name of enabled) await this.run(name).catch(() => {});
    })();
    return this.poweredOn;
  }

  /** Warnings the service logged at its last start (the simulated journal), e.g. config keys it skipped. */
  async journal(name: string): Promise<string[]> {
    await this.powerOn();
    return (await this.state()).journal?.[name] ?? [];
  }

  private async run(name: string): Promise<void> {
    const lines: string[] = [];
    try {
      await SIM_UNITS[name]?.start(this.ctx((line) => lines.push(line)));
      await this.update((s) => {
        s.journal = { ...s.journal, [name]: lines.slice(0, 50) };
      });
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

  private ctx(warn: (line: string) => void = () => {}): SimUnitContext {
    return { root: this.root, stateRoot: this.stateRoot, registry: this.registry, warn };
  }

  private async state(): Promise<ServicesState> {
    const raw = (await readJsonFile(join(this.stateRoot, SIM_SERVICES_FILE))) as Partial<ServicesState> | undefined;
    return { enabled: raw?.enabled ?? [], active: raw?.active ?? [], failed: raw?.failed ?? {}, journal: raw?.journal ?? {} };
  }

  /** Read-modify-write of the state file, one at a time. */
  private update(change: (s: ServicesState) => void): Promise<void> {
    const next = this.queue.then(async () => {
      const s = await this.state();
      change(s);
      await writeFileAtomic(join(this.stateRoot, SIM_SERVICES_FILE), `${JSON.stringify(s)}\n`, 0o644);
    });
    this.queue = next.catch(() => {});
    return next;
  }
}
