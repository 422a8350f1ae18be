import { type AgentStatus, type HostSpec, type ManagerError, ManagersStatus } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { Backoff, sleep } from '../backoff.js';
import type { Device } from '../device/device.js';
import { AddonsManager } from './addons/addons.manager.js';
import { KubernetesManager } from './kubernetes/kubernetes.manager.js';
import { kubernetesHealthCheck } from './kubernetes/kubernetes-health.js';
import { MaintenanceManager } from './maintenance/maintenance.manager.js';
import { type Manager, type ManagerContext, ManagerFailure, type ManagerName } from './manager.js';
import { type OsHealthCheck, OsManager } from './os/os.manager.js';
import { VirtManager } from './virt/virt.manager.js';

/** Fixed order managers run in (docs/architecture.md "Manager runner"). */
export const MANAGER_ORDER: readonly ManagerName[] = ['maintenance', 'os', 'kubernetes', 'addons', 'virt'];

export interface RunnerOptions {
  device: Device;
  dataDir: string;
  log: Logger;
  /** Managers; the runner sorts them into MANAGER_ORDER. */
  managers: Manager[];
  /** Called with the full status whenever it changed. */
  report(status: AgentStatus): void;
  emitEvent(type: 'Normal' | 'Warning', reason: string, message: string): void;
  retry?: { baseMs: number; capMs: number };
}

/**
 * Converges the host to the desired spec with the managers, in order: prepare of every manager
 * first (downloads and staging, no disruption), then apply of each in order. A newer spec aborts
 * the current run (through ManagerContext.signal) and starts over; a retryable failure is retried
 * with backoff, a fatal one waits for the next spec. Status is pushed whenever it changes.
 */
export class ManagerRunner {
  private readonly managers: Manager[];
  private controller?: AbortController;
  private current?: Promise<void>;
  /** The spec of the run in progress (cleared when it settles), to ignore a re-sent identical spec. */
  private running?: { generation: number; json: string };
  private errors = new Map<ManagerName, ManagerError>();
  private lastReported?: string;
  private reporting: Promise<void> = Promise.resolve();
  /** The last spec submitted, for reconcileDrift(). */
  private last?: { spec: HostSpec; generation: number };
  private checkingDrift = false;

  constructor(private readonly options: RunnerOptions) {
    this.managers = [...options.managers].sort((a, b) => MANAGER_ORDER.indexOf(a.name) - MANAGER_ORDER.indexOf(b.name));
  }

  /** Starts converging to `spec`, aborting a run in progress. Returns the new run (resolves when it settles). */
  submit(spec: HostSpec, generation: number): Promise<void> {
    const json = JSON.stringify(spec);
    this.last = { spec, generation };
    // The server re-sends the spec on every reconnect: do not restart a run (a download) for it.
    if (this.current && this.running?.generation === generation && this.running.json === json) return this.current;
    const running = { generation, json };
    this.running = running;
    const previous = { controller: this.controller, run: this.current };
    const controller = new AbortController();
    this.controller = controller;
    previous.controller?.abort(new Error('a newer spec arrived'));
    const run = (async () => {
      await previous.run; // the aborted run releases the managers first
      if (controller.signal.aborted) return;
      await this.run(spec, generation, controller.signal);
    })()
      .catch((err) => this.options.log.error({ err: (err as Error).message, generation }, 'manager run failed'))
      .finally(() => {
        if (this.running === running) this.running = undefined;
      });
    this.current = run;
    return run;
  }

  /**
   * Converges to the last spec again when a manager reports drift (Manager.drifted: the host moved by
   * itself, e.g. a VM whose guest rebooted is shut off) and no run is in progress; managers that are
   * still converged skip the run. A manager that cannot tell counts as not drifted. Returns the run,
   * or undefined when nothing drifted, a run was in progress or no spec came yet.
   */
  async reconcileDrift(): Promise<Promise<void> | undefined> {
    if (this.running || !this.last || this.checkingDrift) return undefined;
    this.checkingDrift = true;
    try {
      return await this.findDrift();
    } finally {
      this.checkingDrift = false;
    }
  }

  private async findDrift(): Promise<Promise<void> | undefined> {
    const last = this.last;
    if (!last) return undefined;
    for (const manager of this.managers) {
      const drifted = await manager.drifted?.().catch((err: Error) => {
        this.options.log.warn({ manager: manager.name, err: err.message }, 'cannot tell whether the host drifted');
        return false;
      });
      if (drifted) {
        this.options.log.info({ manager: manager.name }, 'the host drifted from the applied spec; converging again');
        return this.running ? undefined : this.submit(last.spec, last.generation);
      }
    }
    return undefined;
  }

  /** Aborts the run in progress and waits for it to end. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.controller?.abort(new Error('agent stopping'));
    // A manager that ignores its signal must not keep the agent from stopping (or from a simulated reboot).
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const timedOut = await Promise.race([Promise.all([this.current, this.reporting]).then(() => false), late]);
    clearTimeout(timer);
    if (timedOut) this.options.log.warn({ timeoutMs }, 'a manager did not stop in time; leaving it behind');
  }

  /** Status of every manager, plus the runner's record of a manager's last failure. */
  async status(): Promise<AgentStatus> {
    const managers: Record<string, unknown> = {};
    for (const manager of this.managers) {
      try {
        const status = (await manager.status()) as Record<string, unknown> | undefined;
        if (!status) continue;
        const error = this.errors.get(manager.name);
        managers[manager.name] = error && !status.error ? { ...status, error } : status;
      } catch (err) {
        this.options.log.warn({ manager: manager.name, err: (err as Error).message }, 'cannot read manager status');
      }
    }
    const parsed = ManagersStatus.safeParse(managers);
    if (!parsed.success) {
      this.options.log.warn({ issues: parsed.error.issues.slice(0, 3) }, 'a manager reported an invalid status');
      return {};
    }
    const capabilities = this.managers.flatMap((m) => (m.capability ? [m.capability] : []));
    return { managers: parsed.data, ...(capabilities.length ? { capabilities } : {}) };
  }

  /** Recomputes the status and reports it if it changed; calls are serialized. */
  reportNow(): Promise<void> {
    this.reporting = this.reporting.then(async () => {
      const status = await this.status();
      const json = JSON.stringify(status);
      if (json === this.lastReported) return;
      this.lastReported = json;
      this.options.report(status);
    });
    return this.reporting;
  }

  private async run(spec: HostSpec, generation: number, signal: AbortSignal): Promise<void> {
    const retry = this.options.retry ?? { baseMs: 2_000, capMs: 300_000 };
    const backoff = new Backoff(retry);
    const log = this.options.log.child({ generation });
    for (;;) {
      try {
        await this.runOnce(spec, signal);
        this.errors.clear();
        await this.reportNow();
        log.info('host converged to the desired spec');
        return;
      } catch (err) {
        if (signal.aborted) return;
        const failure = err as ManagerFailure;
        const { component, retryable, message } = failure.detail;
        log.error({ manager: component, phase: failure.detail.phase, retryable, err: message }, 'manager failed');
        await this.reportNow();
        if (!retryable) return;
        if (!(await sleep(Math.max(backoff.next(), retry.baseMs / 2), signal))) return;
      }
    }
  }

  private async runOnce(spec: HostSpec, signal: AbortSignal): Promise<void> {
    const todo: Manager[] = [];
    for (const manager of this.managers) {
      const desired = spec[manager.name];
      const done = await this.step(manager, 'prepare', signal, async () => (manager.converged ? manager.converged(desired as never) : false));
      if (!done) todo.push(manager);
    }
    for (const manager of todo)
      await this.step(manager, 'prepare', signal, () => manager.prepare(spec[manager.name] as never, this.context(manager, signal), spec));
    await this.reportNow();
    for (const manager of todo) {
      await this.step(manager, 'apply', signal, () => manager.apply(spec[manager.name] as never, this.context(manager, signal), spec));
      await this.reportNow();
    }
  }

  /** Runs one manager call; records its failure (a ManagerFailure, or any error wrapped as a retryable one). */
  private async step<T>(manager: Manager, phase: 'prepare' | 'apply', signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    try {
      const result = await fn();
      this.errors.delete(manager.name);
      return result;
    } catch (err) {
      signal.throwIfAborted();
      const failure =
        err instanceof ManagerFailure
          ? err
          : new ManagerFailure({ phase, component: manager.name, retryable: true, message: (err as Error).message ?? String(err) });
      this.errors.set(manager.name, failure.detail);
      throw failure;
    }
  }

  private context(manager: Manager, signal: AbortSignal): ManagerContext {
    return {
      device: this.options.device,
      dataDir: this.options.dataDir,
      log: this.options.log.child({ manager: manager.name }),
      emitEvent: (type, reason, message) => this.options.emitEvent(type, reason, message),
      reportProgress: () => this.reportNow(),
      signal,
    };
  }
}

export interface CreateManagersOptions {
  dataDir: string;
  /** Extra post-boot health checks of the os manager (the booted digest is always checked). */
  osHealthChecks?: OsHealthCheck[];
  /** Appliances: the libvirt connection the virt manager drives (agent config virt.libvirtUri). */
  virt?: { libvirtUri: string; kvm?: boolean; inventoryIntervalSeconds?: number };
}

/**
 * The managers of this agent, in order: os -> kubernetes -> addons. A trial boot of a new OS image
 * must also bring the node back Ready in its cluster before the slot is committed.
 */
export async function createManagers(device: Device, options: CreateManagersOptions): Promise<Manager[]> {
  const healthChecks = [kubernetesHealthCheck(device), ...(options.osHealthChecks ?? [])];
  const managers: Manager[] = [
    new MaintenanceManager(device, { dataDir: options.dataDir }),
    new OsManager(device, { dataDir: options.dataDir, healthChecks }),
    new KubernetesManager(device, { dataDir: options.dataDir }),
    new AddonsManager(device),
  ];
  if (options.virt) managers.push(new VirtManager(device, { uri: options.virt.libvirtUri, dataDir: options.dataDir, kvm: options.virt.kvm }));
  return managers;
}
