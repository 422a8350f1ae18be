import type { Inventory } from '@edgeplane/protocol';
import type { SlotBoot } from './boot-env.js';
import type { ExecOptions, ExecResult } from './exec.js';
import type { DeviceFiles } from './files.js';
import type { HttpResult } from './http.js';
import type { KubernetesClient } from './kube-client.js';
import type { Libvirt } from './libvirt.js';
import type { DeviceProcesses } from './processes.js';
import type { ServiceManager } from './services.js';

/**
 * The seam between agent logic and the machine. Every side effect the managers and remote
 * sessions have on the host goes through a Device: its files, processes, HTTP checks, services,
 * boot environment, reboot, Kubernetes and libvirt. Every member is required: a device that lacks
 * a capability says so through the member (e.g. `boot: 'unmanaged'`), never by leaving it out.
 * `LinuxDevice` (device/linux/) acts on the real machine; `SimDevice` (device/sim/) is a simulation
 * for the fleet simulator and tests, and says so (`kind: 'simulated'`, inventory.simulated = true).
 * The agent's own state under its data dir (identity, spec store, event queue, logs) is not the
 * device's and does not go through here.
 */
export interface Device {
  readonly kind: 'linux' | 'simulated';
  /** Directory the device's files live under ('/' for a real device); `files` resolves paths under it. */
  readonly root: string;
  /** Stable device identity: DMI product_uuid, else /etc/machine-id. Same value across restarts. */
  deviceUid(): Promise<string>;
  /** Current hardware and OS inventory. */
  inventory(): Promise<Inventory>;
  /** The device's files by device path (read, atomic write, remove, stat, list), under `root`. */
  readonly files: DeviceFiles;
  /**
   * Runs a command on the device (no shell); a non-zero exit rejects with ExecError. SimDevice runs
   * no binaries: it answers only the commands it simulates (kubeadm, helm) and refuses the rest.
   */
  exec(command: string, args: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Remote-session processes: PTY shells and piped commands (SimDevice: in its sandbox). */
  readonly processes: DeviceProcesses;
  /**
   * An HTTP GET from the device's network with a timeout (health checks). Resolves with any status;
   * rejects with HttpError when nothing answers.
   */
  httpGet(url: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<HttpResult>;
  /** The service manager: systemd on LinuxDevice, a simulation on SimDevice. */
  readonly services: ServiceManager;
  /**
   * The boot environment: A/B slots + grubenv (the os manager), or 'unmanaged' on a host that keeps
   * its own OS (no A/B slots; the agent installs no OS images there).
   */
  readonly boot: SlotBoot | 'unmanaged';
  /**
   * Restarts the machine. Resolves once the reboot is under way; the agent process is about to end
   * (SimDevice: the simulated boot loader runs and the device's agent is restarted in-process).
   */
  reboot(): Promise<void>;
  /**
   * Calls `listener` after a reboot the agent outlives: SimDevice's simulated reboots, so the Agent
   * owning the device restarts in-process. LinuxDevice never calls it (a real reboot ends the process).
   * Returns an unsubscribe.
   */
  onReboot(listener: () => void): () => void;
  /**
   * A Kubernetes API client authenticated with the kubeconfig file at `kubeconfigPath` (a device
   * path, resolved under `root`): @kubernetes/client-node on LinuxDevice, the simulated cluster API on SimDevice.
   */
  kubernetes(kubeconfigPath: string): KubernetesClient;
  /**
   * The libvirt connection at `uri` (the virt manager of an appliance): one long-lived virsh session
   * per URI. SimDevice: libvirt's test driver (test:///...), private to the device.
   */
  libvirt(uri: string): Libvirt;
  /**
   * A line shown at the top of every remote shell and command on this device, for the operator;
   * undefined: none (LinuxDevice). SimDevice says there that sessions run in its sandbox.
   */
  sessionNotice(user: string): string | undefined;
  /** Ends the device's long-lived helpers (virsh sessions). */
  close(): Promise<void>;
}

/** The device's A/B boot environment, or undefined when it has none ('unmanaged'). */
export function slotBoot(device: Pick<Device, 'boot'>): SlotBoot | undefined {
  return device.boot === 'unmanaged' ? undefined : device.boot;
}
