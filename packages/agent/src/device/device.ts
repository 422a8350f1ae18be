import type { Inventory } from '@edgeplane/protocol';
import type { SlotBoot } from './boot-env.js';
import type { ExecOptions, ExecResult } from './exec.js';
import type { KubernetesClient } from './kube-client.js';
import type { Libvirt } from './libvirt.js';
import type { ServiceManager } from './services.js';

/**
 * The seam between agent logic and the machine. Every side effect the agent has on its host goes
 * through a Device. `LinuxDevice` acts on the real machine; `SimDevice` is a simulation for the
 * fleet simulator and tests, and says so (`kind: 'simulated'`, inventory.simulated = true).
 * Later issues add exec, boot environment, reboot, services, Kubernetes and libvirt here.
 */
export interface Device {
  readonly kind: 'linux' | 'simulated';
  /** Directory the device's files live under ('/' for a real device). */
  readonly root: string;
  /** Stable device identity: DMI product_uuid, else /etc/machine-id. Same value across restarts. */
  deviceUid(): Promise<string>;
  /** Current hardware and OS inventory. */
  inventory(): Promise<Inventory>;
  /** A/B slots + grubenv boot environment (the os manager); absent on devices that cannot do image updates. */
  readonly boot?: SlotBoot;
  /**
   * Restarts the machine. Resolves once the reboot is under way; the agent process is about to end
   * (SimDevice: the simulated boot loader runs and the device's agent is restarted in-process).
   */
  reboot?(): Promise<void>;
  /**
   * SIMULATION hook: SimDevice calls `listener` after a simulated reboot so the Agent owning the
   * device restarts in-process (a real reboot ends the process instead). Returns an unsubscribe.
   */
  onReboot?(listener: () => void): () => void;
  /**
   * Runs a command on the device (no shell); a non-zero exit rejects with ExecError. SimDevice runs
   * no binaries: it answers only the commands it simulates (kubeadm, helm) and refuses the rest.
   */
  exec?(command: string, args: string[], options?: ExecOptions): Promise<ExecResult>;
  /** The service manager (the kubernetes manager): systemd on LinuxDevice, a simulation on SimDevice. */
  readonly services?: ServiceManager;
  /**
   * A Kubernetes API client authenticated with the kubeconfig file at `kubeconfigPath` (a device
   * path, resolved under `root`): @kubernetes/client-node on LinuxDevice, the simulated cluster API on SimDevice.
   */
  kubernetes?(kubeconfigPath: string): KubernetesClient;
  /**
   * The libvirt connection at `uri` (the virt manager of an appliance): one long-lived virsh session
   * per URI. SimDevice: libvirt's test driver (test:///...), private to the device.
   */
  libvirt?(uri: string): Libvirt;
  /**
   * A line shown at the top of every remote shell and command on this device, for the operator;
   * undefined: none. SimDevice says there that sessions run on the simulator's own machine.
   */
  sessionNotice?(user: string): string | undefined;
  /** Ends the device's long-lived helpers (virsh sessions). */
  close?(): Promise<void>;
}
