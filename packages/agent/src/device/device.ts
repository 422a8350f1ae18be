import type { Inventory } from '@edgeplane/protocol';

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
}
