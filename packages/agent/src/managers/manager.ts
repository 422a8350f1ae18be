import type { HostSpec, ManagerError } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { Device } from '../device/device.js';

/**
 * Contract of an agent manager (docs/architecture.md "Manager runner"). One manager per top-level
 * key of the host spec, run one after another in a fixed order (MANAGER_ORDER in runner.ts):
 * maintenance -> os -> kubernetes -> addons -> virt. Everything a manager does to the machine goes
 * through `ctx.device` (files, commands, services, boot environment, Kubernetes, libvirt; a lint
 * rule in biome.json refuses raw fs, child_process and fetch here). A manager keeps its own state
 * under the agent's data dir so it survives agent restarts and reboots, and is idempotent: calling
 * prepare/apply again with the same desired spec is a no-op.
 */
export interface ManagerContext {
  device: Device;
  /** Agent data dir (persistent across reboots); a manager keeps its files under <dataDir>/<name>/. */
  dataDir: string;
  log: Logger;
  /** Queues an event for the server (Normal or Warning), e.g. 'ImageStaged', 'NodeReady', 'FellBack'. */
  emitEvent(type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** Asks the runner to send the status now (intermediate progress, e.g. download percentage); may be awaited. */
  reportProgress(): void | Promise<void>;
  /** Aborted when a newer spec arrives or the agent stops. */
  signal: AbortSignal;
}

export type ManagerName = 'maintenance' | 'os' | 'kubernetes' | 'addons' | 'virt';

export interface Manager<Name extends ManagerName = ManagerName> {
  readonly name: Name;
  /** Validate, download, stage. No disruption to what the node serves. */
  prepare(desired: HostSpec[Name] | undefined, ctx: ManagerContext, spec: HostSpec): Promise<void>;
  /** The disruptive part (slot switch + reboot, service restart, apply to the cluster). */
  apply(desired: HostSpec[Name] | undefined, ctx: ManagerContext, spec: HostSpec): Promise<void>;
  /** Current observed status, reported under AgentStatus.managers[name]. */
  status(): Promise<unknown>;
  /** True when the observed state matches `desired` (the runner then skips prepare/apply). */
  converged?(desired: HostSpec[Name] | undefined): Promise<boolean>;
  /**
   * True when the host moved away from the last applied spec by itself (e.g. a VM whose guest
   * rebooted is shut off): the runner then converges to that spec again (ManagerRunner.reconcileDrift).
   */
  drifted?(): Promise<boolean>;
  /** A capability the host has because of this manager (reported in AgentStatus.capabilities), e.g. `libvirt`. */
  readonly capability?: string;
}

/** A manager failure: which phase, which component, and whether retrying can help. */
export class ManagerFailure extends Error {
  constructor(readonly detail: ManagerError) {
    super(detail.message);
    this.name = 'ManagerFailure';
  }
}
