/**
 * SIMULATION. SimDevice stands in for a machine in the fleet simulator and in tests; nothing it
 * reports is real hardware. Its files live under a sandbox `root` directory; its device UID is a
 * random UUID made on first use and kept at `<root>/etc/edgeplane-sim/device-uid`, so a restarted
 * simulated device is the same device. Its inventory is plausible fake hardware derived from that
 * UID (the same UID always gives the same inventory) and is marked `simulated: true`.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Inventory } from '@edgeplane/protocol';
import type { Device } from '../device.js';
import { type ExecOptions, type ExecResult, execCommand } from '../exec.js';
import { RootedFiles } from '../files.js';
import { type HttpResult, httpGet } from '../http.js';
import type { KubernetesClient } from '../kube-client.js';
import { type Libvirt, LibvirtConnections } from '../libvirt.js';
import { runSimCommand } from './sim-commands.js';
import { SimKubernetesClient } from './sim-kube-client.js';
import { type SimKubernetes, simKubernetes } from './sim-kubernetes.js';
import { SANDBOX_NOTICE, SimSandbox } from './sim-sandbox.js';
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
  /**
   * 'unmanaged': a simulated host that keeps its own OS (no A/B slots; `boot` is 'unmanaged'). Its
   * OS is what <root>/etc/os-release says (default: Debian 12). Default 'ab': simulated Edgeplane OS.
   */
  os?: 'ab' | 'unmanaged';
  /**
   * A software TPM 2.0 attached to the simulated device, as QEMU attaches swtpm to a VM: the TCTI of
   * a running swtpm (e.g. `swtpm:host=127.0.0.1,port=2321`). tpm2-tools then run for real against it
   * (tpm2_* commands only, with their TCTI pointed at it). Default: no TPM.
   */
  tpm?: { tcti: string };
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
  /** SIMULATION: slots are directories under the sandbox root; the grubenv and grub-editenv are real. 'unmanaged': none. */
  readonly boot: SimSlots | 'unmanaged';
  /** The simulated device's files: under its sandbox directory `root`. */
  readonly files: RootedFiles;
  /** SIMULATION: remote shells and commands run in a bubblewrap sandbox whose / is `root` (see sim-sandbox.ts). */
  readonly processes: SimSandbox;
  private readonly rebootListeners = new Set<() => void>();
  /** SIMULATION: Kubernetes services act on the written configuration against the simulated clusters. */
  readonly services: SimServiceManager;
  private readonly simKubernetes: SimKubernetes;
  private readonly tpm?: { tcti: string };

  constructor(options: SimDeviceOptions) {
    this.root = options.root;
    this.hostname = options.hostname;
    this.boot = options.os === 'unmanaged' ? 'unmanaged' : new SimSlots(this.root, async () => (await this.inventory()).hostname);
    this.files = new RootedFiles(this.root);
    this.processes = new SimSandbox(this.root, async () => (await this.inventory()).hostname);
    this.simKubernetes = options.kubernetes ?? simKubernetes;
    this.services = new SimServiceManager(this.root, this.simKubernetes);
    this.tpm = options.tpm;
  }

  /**
   * SIMULATION: only the simulated commands (kubeadm, helm; see sim-commands.ts) run; others are
   * refused. With a TPM attached, tpm2-tools run on the machine against that swtpm, whatever TCTI the
   * caller named (the device's /dev/tpmrm0 is that swtpm, as for a VM).
   */
  exec(command: string, args: string[], options?: ExecOptions): Promise<ExecResult> {
    if (this.tpm && /^tpm2_[a-z]+$/.test(command))
      return execCommand(command, [`--tcti=${this.tpm.tcti}`, ...args.filter((a) => !a.startsWith('--tcti='))], options);
    return runSimCommand(command, args, { root: this.root, registry: this.simKubernetes, services: this.services });
  }

  /** SIMULATION: every remote shell and command says on its first line that it runs in the simulator's sandbox. */
  sessionNotice(user: string): string {
    return SANDBOX_NOTICE(user);
  }

  /**
   * SIMULATION: the simulated host's network is the simulator machine's (its sandbox shares it), so
   * a health check's GET goes out from the simulator's process.
   */
  httpGet(url: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<HttpResult> {
    return httpGet(url, options);
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
    if (this.boot !== 'unmanaged') await this.boot.boot();
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
    const release = parseOsRelease((this.boot === 'unmanaged' ? await this.files.readText('etc/os-release') : await this.boot.bootedOsRelease()) ?? '');
    const defaults = this.boot === 'unmanaged' ? { NAME: 'Debian GNU/Linux', VERSION_ID: '12' } : { NAME: 'Edgeplane OS', VERSION_ID: '0.1.0' };
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
      os: { name: `${release.NAME ?? defaults.NAME} (simulated)`, version: release.VERSION_ID ?? defaults.VERSION_ID, kernel: '6.6.0-sim' },
      simulated: true,
    };
  }

  private async loadOrCreateUid(): Promise<string> {
    const existing = (await this.files.readText(SIM_DEVICE_UID_FILE))?.trim();
    if (existing) return existing;
    const uid = randomUUID();
    await this.files.writeAtomic(SIM_DEVICE_UID_FILE, `${uid}\n`, 0o644);
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
