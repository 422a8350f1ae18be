/**
 * SIMULATION. SimDevice stands in for a machine in the fleet simulator and in tests; nothing it
 * reports is real hardware. Its files live under a sandbox `root` directory; its device UID is a
 * random UUID made on first use and kept at `<root>/etc/edgeplane-sim/device-uid`, so a restarted
 * simulated device is the same device. Its inventory is plausible fake hardware derived from that
 * UID (the same UID always gives the same inventory) and is marked `simulated: true`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Inventory } from '@edgeplane/protocol';
import { writeFileAtomic } from '../../atomic-file.js';
import type { Device } from '../device.js';
import type { ExecOptions, ExecResult } from '../exec.js';
import type { KubernetesClient } from '../kube-client.js';
import { type Libvirt, LibvirtConnections } from '../libvirt.js';
import { runSimCommand } from './sim-commands.js';
import { SimKubernetesClient } from './sim-kube-client.js';
import { type SimKubernetes, simKubernetes } from './sim-kubernetes.js';
import { SimServiceManager } from './sim-services.js';
import { SimSlots } from './sim-slots.js';

export const SIM_DEVICE_UID_FILE = 'etc/edgeplane-sim/device-uid';

export interface SimDeviceOptions {
  /** Sandbox directory holding the simulated device's files. */
  root: string;
  /** Hostname to report; default `sim-<first 8 chars of the uid>`. */
  hostname?: string;
  /** Simulated Kubernetes registry the device's clusters live in; default: the one shared by the process. */
  kubernetes?: SimKubernetes;
}

const MODELS = [
  { vendor: 'Intel Corporation', product: 'NUC11TNHi5', cpu: 'Intel(R) Core(TM) i5-1135G7 @ 2.40GHz', cores: [8], memGiB: [16, 32] },
  { vendor: 'ASUSTeK COMPUTER INC.', product: 'NUC13ANHi7', cpu: '13th Gen Intel(R) Core(TM) i7-1360P', cores: [16], memGiB: [32, 64] },
  { vendor: 'Dell Inc.', product: 'PowerEdge XR11', cpu: 'Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz', cores: [32, 64], memGiB: [128, 256] },
  { vendor: 'Lenovo', product: 'ThinkEdge SE30', cpu: 'Intel(R) Core(TM) i5-1145GRE @ 2.60GHz', cores: [8], memGiB: [8, 16] },
] as const;

export class SimDevice implements Device {
  readonly kind = 'simulated' as const;
  readonly root: string;
  private readonly hostname?: string;
  private uid?: Promise<string>;
  /** SIMULATION: slots are directories under the sandbox root; the grubenv and grub-editenv are real. */
  readonly boot: SimSlots;
  private readonly rebootListeners = new Set<() => void>();
  /** SIMULATION: Kubernetes services act on the written configuration against the simulated clusters. */
  readonly services: SimServiceManager;
  private readonly simKubernetes: SimKubernetes;

  constructor(options: SimDeviceOptions) {
    this.root = options.root;
    this.hostname = options.hostname;
    this.boot = new SimSlots(this.root, async () => (await this.inventory()).hostname);
    this.simKubernetes = options.kubernetes ?? simKubernetes;
    this.services = new SimServiceManager(this.root, this.simKubernetes);
  }

  /** SIMULATION: only the simulated commands (kubeadm, helm; see sim-commands.ts) run; others are refused. */
  exec(command: string, args: string[], _options?: ExecOptions): Promise<ExecResult> {
    return runSimCommand(command, args, { root: this.root, registry: this.simKubernetes, services: this.services });
  }

  /**
   * SIMULATION: remote shells and commands are not simulated; they run on the simulator's own
   * machine, as the user the agent runs sessions as. Every session says so on its first line.
   */
  sessionNotice(user: string): string {
    return `simulated host: this command runs on the simulator's machine as ${user}`;
  }

  /** SIMULATION: a client of the simulated cluster named by the kubeconfig file. */
  kubernetes(kubeconfigPath: string): KubernetesClient {
    return new SimKubernetesClient(this.root, kubeconfigPath, this.simKubernetes);
  }

  private readonly libvirts = new LibvirtConnections();

  /**
   * libvirt at `uri`, for real (a virsh session); the simulator points each appliance at libvirt's
   * test driver with its own node file (test:///<file>), whose state is private to each connection
   * and so to each device.
   */
  libvirt(uri: string): Libvirt {
    return this.libvirts.get(uri);
  }

  close(): Promise<void> {
    return this.libvirts.closeAll();
  }

  /**
   * SIMULATION of a reboot: runs the simulated boot loader (which reads and updates the real grubenv
   * like grub.cfg does), records the booted slot, then tells the owning Agent to restart in-process.
   */
  async reboot(): Promise<void> {
    await this.boot.boot();
    // Running services end with the power cycle; enabled ones start again at boot.
    await this.services.powerCycle();
    // After the caller's reboot() resolved, like the process ending shortly after `systemctl reboot`.
    setImmediate(() => {
      for (const listener of this.rebootListeners) listener();
    });
  }

  onReboot(listener: () => void): () => void {
    this.rebootListeners.add(listener);
    return () => this.rebootListeners.delete(listener);
  }

  deviceUid(): Promise<string> {
    // Memoized so concurrent first calls do not race to create two different UIDs.
    this.uid ??= this.loadOrCreateUid().catch((err) => {
      this.uid = undefined;
      throw err;
    });
    return this.uid;
  }

  async inventory(): Promise<Inventory> {
    const uid = await this.deviceUid();
    const release = parseOsRelease((await this.boot.bootedOsRelease()) ?? '');
    const h = createHash('sha256').update(uid).digest();
    const pick = <T>(arr: readonly T[], byte: number): T => arr[h[byte] % arr.length];
    const model = pick(MODELS, 0);
    const mac = `02:${[...h.subarray(1, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    return {
      hostname: this.hostname ?? `sim-${uid.slice(0, 8)}`,
      machineId: uid.replace(/-/g, ''),
      dmi: { productUuid: uid, vendor: model.vendor, productName: model.product, serial: `SIM${h.subarray(6, 11).toString('hex').toUpperCase()}` },
      cpu: { model: model.cpu, cores: pick(model.cores, 11), arch: 'x64' },
      memoryBytes: pick(model.memGiB, 12) * 1024 ** 3,
      disks: [{ name: 'nvme0n1', sizeBytes: pick([256, 512, 1024], 13) * 1e9, model: 'SIMULATED NVMe SSD', rotational: false }],
      nics: [{ name: 'eth0', mac, addresses: [`10.${h[14]}.${h[15]}.${(h[16] % 250) + 2}/16`] }],
      os: { name: `${release.NAME ?? 'Edgeplane OS'} (simulated)`, version: release.VERSION_ID ?? '0.1.0', kernel: '6.6.0-sim' },
      simulated: true,
    };
  }

  private async loadOrCreateUid(): Promise<string> {
    const file = join(this.root, SIM_DEVICE_UID_FILE);
    try {
      const existing = (await readFile(file, 'utf8')).trim();
      if (existing) return existing;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const uid = randomUUID();
    await writeFileAtomic(file, `${uid}\n`, 0o644);
    return uid;
  }
}

function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=("?)(.*)\2$/.exec(line.trim());
    if (m) out[m[1]] = m[3];
  }
  return out;
}
