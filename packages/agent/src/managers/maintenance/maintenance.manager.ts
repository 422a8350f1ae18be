import { join } from 'node:path';
import { type HostSpec, type MaintenanceSpec, MaintenanceStatus } from '@edgeplane/protocol';
import { readJsonFile, writeFileAtomic } from '../../atomic-file.js';
import { sleep } from '../../backoff.js';
import type { Device } from '../../device/device.js';
import type { KubernetesClient } from '../../device/kube-client.js';
import { driverFor } from '../kubernetes/drivers.js';
import { type Manager, type ManagerContext, ManagerFailure } from '../manager.js';

interface MaintenanceState extends MaintenanceStatus {
  /** Set right before a maintenance reboot: after the boot, that reboot counts as done. */
  pendingRebootId?: string;
}

const IDLE: MaintenanceState = { phase: 'None', cordoned: false };

export interface MaintenanceManagerOptions {
  dataDir: string;
  /** Pause between eviction rounds of a drain (default 2 s; 50 ms on a simulated device). */
  pollIntervalMs?: number;
  rebootTimeoutMs?: number;
}

/**
 * The `maintenance` manager (runs first, before os): executes the maintenance window the cluster
 * controller opens on this node during a rolling upgrade, through the node's own cluster API,
 * since the server cannot reach a cluster API at an edge site. cordon -> drain (evictions honour
 * PodDisruptionBudgets; after the timeout the node goes down anyway, with a DrainTimedOut warning)
 * -> optional reboot once per rebootId. Without a maintenance spec the node is uncordoned. It uses
 * the admin kubeconfig where the distribution wrote one (control-plane nodes), else the kubelet's.
 */
export class MaintenanceManager implements Manager<'maintenance'> {
  readonly name = 'maintenance' as const;
  private state?: MaintenanceState;

  constructor(
    private readonly device: Device,
    private readonly options: MaintenanceManagerOptions,
  ) {}

  private get file(): string {
    return join(this.options.dataDir, 'maintenance', 'state.json');
  }

  async status(): Promise<MaintenanceStatus | undefined> {
    const { pendingRebootId: _p, ...s } = await this.load();
    return s.phase === 'None' && !s.cordoned && !s.rebootId ? undefined : s;
  }

  async converged(desired: MaintenanceSpec | undefined): Promise<boolean> {
    const s = await this.load();
    if (!desired?.cordon) return !s.cordoned && s.phase === 'None';
    if (!s.cordoned) return false;
    if (desired.drain && s.phase !== 'Drained') return false;
    return !desired.rebootId || s.rebootId === desired.rebootId;
  }

  async prepare(): Promise<void> {}

  async apply(desired: MaintenanceSpec | undefined, ctx: ManagerContext, spec: HostSpec): Promise<void> {
    let s = await this.load();
    const k = spec.kubernetes;
    if (!desired?.cordon) {
      if (s.cordoned && k) {
        await this.client(k).then((c) => this.call(() => c.cordon(k.nodeName, false), 'uncordon'));
        ctx.emitEvent('Normal', 'NodeUncordoned', `node ${k.nodeName} is schedulable again`);
      }
      await this.save({ ...IDLE, ...(s.rebootId ? { rebootId: s.rebootId } : {}) });
      return;
    }
    if (!k) throw new ManagerFailure({ phase: 'apply', component: 'maintenance', retryable: false, message: 'maintenance needs a Kubernetes node' });
    const client = await this.client(k);
    if (!s.cordoned || s.phase === 'None') {
      await this.call(() => client.cordon(k.nodeName, true), 'cordon');
      s = await this.save({ ...s, phase: 'Cordoned', cordoned: true, evicted: undefined, drainTimedOut: undefined, message: `node ${k.nodeName} cordoned` });
      ctx.emitEvent('Normal', 'NodeCordoned', `node ${k.nodeName} cordoned`);
      await ctx.reportProgress();
    }
    if (desired.drain && s.phase !== 'Drained') s = await this.drain(client, k.nodeName, desired.drain.timeoutSeconds, ctx);
    if (desired.rebootId && s.rebootId !== desired.rebootId) {
      if (s.pendingRebootId === desired.rebootId) {
        await this.save({ ...s, rebootId: desired.rebootId, pendingRebootId: undefined, phase: 'Drained', message: 'rebooted' });
        return;
      }
      await this.save({ ...s, pendingRebootId: desired.rebootId, phase: 'Rebooting', message: `rebooting (${desired.rebootId})` });
      ctx.emitEvent('Normal', 'Rebooting', `maintenance reboot ${desired.rebootId}`);
      await ctx.reportProgress();
      await this.device.reboot();
      await sleep(this.options.rebootTimeoutMs ?? 600_000, ctx.signal);
      ctx.signal.throwIfAborted();
      throw new ManagerFailure({ phase: 'apply', component: 'maintenance', retryable: true, message: 'the reboot was requested but did not happen' });
    }
  }

  private async drain(client: KubernetesClient, node: string, timeoutSeconds: number, ctx: ManagerContext): Promise<MaintenanceState> {
    const s = await this.save({ ...(await this.load()), phase: 'Draining', message: `draining node ${node}` });
    await ctx.reportProgress();
    const poll = this.options.pollIntervalMs ?? (this.device.kind === 'simulated' ? 50 : 2_000);
    const deadline = Date.now() + timeoutSeconds * 1000;
    let evicted = 0;
    for (;;) {
      const round = await this.call(() => client.evictPods(node), 'drain');
      evicted += round.evicted;
      if (round.remaining === 0) {
        ctx.emitEvent('Normal', 'NodeDrained', `node ${node} drained (${evicted} pod(s) evicted)`);
        return this.save({ ...s, phase: 'Drained', evicted, drainTimedOut: false, message: `node ${node} drained` });
      }
      if (Date.now() >= deadline) {
        // Like `kubectl drain --timeout` followed by the reboot anyway: a budget that can never be met
        // (a single-node cluster) must not block the upgrade forever; the warning says what it cost.
        const message = `drain of ${node} timed out after ${timeoutSeconds} s with ${round.remaining} pod(s) left (disruption budgets); continuing`;
        ctx.emitEvent('Warning', 'DrainTimedOut', message);
        return this.save({ ...s, phase: 'Drained', evicted, drainTimedOut: true, message });
      }
      if (!(await sleep(poll, ctx.signal))) ctx.signal.throwIfAborted();
    }
  }

  private async client(k: NonNullable<HostSpec['kubernetes']>): Promise<KubernetesClient> {
    const driver = driverFor(k.distribution);
    const admin = (await this.device.files.stat(driver.adminKubeconfig)) !== undefined;
    return this.device.kubernetes(admin ? driver.adminKubeconfig : driver.nodeKubeconfig(k));
  }

  private async call<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ManagerFailure) throw err;
      // The API may be restarting (right after a reboot): retry.
      throw new ManagerFailure({ phase: 'apply', component: 'maintenance', retryable: true, message: `${what}: ${(err as Error).message}` });
    }
  }

  private async load(): Promise<MaintenanceState> {
    if (!this.state) {
      const raw = await readJsonFile(this.file).catch(() => undefined);
      const parsed = MaintenanceStatus.extend({ pendingRebootId: MaintenanceStatus.shape.rebootId }).safeParse(raw);
      this.state = parsed.success ? parsed.data : { ...IDLE };
    }
    return this.state;
  }

  private async save(s: MaintenanceState): Promise<MaintenanceState> {
    this.state = s;
    await writeFileAtomic(this.file, `${JSON.stringify(s)}\n`);
    return s;
  }
}
