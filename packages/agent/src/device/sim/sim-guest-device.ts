/**
 * SIMULATION of the Kubernetes layer only, on a real machine: a LinuxDevice whose Kubernetes
 * operations are simulated while everything else is real. For guests that boot an OS image without
 * a Kubernetes distribution (the small busybox-based Edgeplane OS: no container runtime), so a
 * virtualized cluster of real VMs can reach Running and go through OS upgrades on a real
 * hypervisor. Opt-in only: the OS image carries SIMULATED_KUBERNETES_MARKER (built with
 * `simulateKubernetes`), and the agent then says so at start, in its inventory's OS name
 * ("... (Kubernetes simulated)") and at the top of every remote session; the simulated nodes report
 * `containerd://simulated`. Production guests boot Edgeplane OS 2, whose distribution is real.
 *
 * Real (the LinuxDevice): files, boot environment (A/B slots, grubenv, trial boots), reboots,
 * processes, network, inventory, libvirt. Simulated (the same strict simulator as SimDevice, see
 * sim-kubernetes.ts): the Kubernetes services (k3s, k3s-agent, rke2-server, rke2-agent, kubelet),
 * the commands kubeadm, helm and the killall scripts, and the Kubernetes API client. The simulated
 * services read the configuration the agent wrote on the real filesystem; the simulation's own
 * records live in `stateDir` (the OS root is read-only). The cluster's registry is reached over the
 * guests' network (sim-kubernetes-http.ts).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Inventory } from '@edgeplane/protocol';
import type { Device } from '../device.js';
import type { ExecOptions, ExecResult } from '../exec.js';
import type { HttpResult } from '../http.js';
import type { KubernetesClient } from '../kube-client.js';
import type { Libvirt } from '../libvirt.js';
import type { LinuxDevice } from '../linux/linux-device.js';
import type { ServiceManager } from '../services.js';
import { isSimCommand, runSimCommand } from './sim-commands.js';
import { SimKubernetesClient } from './sim-kube-client.js';
import { SimKubernetes } from './sim-kubernetes.js';
import { HEARTBEAT_MS, NetworkedSimKubernetes } from './sim-kubernetes-http.js';
import { SimServiceManager } from './sim-services.js';
import { SIM_UNITS, setKubeletReady } from './sim-units.js';

/** A file in the OS image that opts its guests into simulated Kubernetes (written by `simulateKubernetes` image builds). */
export const SIMULATED_KUBERNETES_MARKER = 'usr/lib/edgeplane/kubernetes-simulated';

export const SIMULATED_KUBERNETES_NOTICE =
  'SIMULATION: Kubernetes on this machine is simulated (no kubelet, container runtime or API server runs); ' +
  'its OS, slots, reboots, files and network are real.';

/** The kubelet credential each simulated service posts its node's status with. */
const KUBELETS: [service: string, kubeconfig: string][] = [
  ['k3s', '/var/lib/rancher/k3s/agent/kubelet.kubeconfig'],
  ['k3s-agent', '/var/lib/rancher/k3s/agent/kubelet.kubeconfig'],
  ['rke2-server', '/var/lib/rancher/rke2/agent/kubelet.kubeconfig'],
  ['rke2-agent', '/var/lib/rancher/rke2/agent/kubelet.kubeconfig'],
  ['kubelet', '/etc/kubernetes/kubelet.conf'],
];

/** True when the OS image under `root` opted into simulated Kubernetes. */
export async function imageSimulatesKubernetes(root: string): Promise<boolean> {
  return (await stat(join(root, SIMULATED_KUBERNETES_MARKER)).catch(() => undefined))?.isFile() === true;
}

export interface SimKubernetesGuestOptions {
  /** Writable directory for the simulation's records and the clusters this node initialized (survives reboots). */
  stateDir: string;
  /** Address the registry of a cluster this node initialized listens on (default every address). */
  listenHost?: string;
  log?: (line: string) => void;
}

export class SimKubernetesGuestDevice implements Device {
  readonly kind = 'linux' as const;
  readonly root: string;
  readonly files: LinuxDevice['files'];
  readonly processes: LinuxDevice['processes'];
  readonly boot: LinuxDevice['boot'];
  /** Kubernetes services are simulated units; any other service goes to the machine's service manager. */
  readonly services: ServiceManager;
  private readonly registry: NetworkedSimKubernetes;
  private readonly simServices: SimServiceManager;
  private readonly stateRoot: string;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly loaded: Promise<void>;

  constructor(
    private readonly inner: LinuxDevice,
    options: SimKubernetesGuestOptions,
  ) {
    this.root = inner.root;
    this.files = inner.files;
    this.processes = inner.processes;
    this.boot = inner.boot;
    this.stateRoot = join(options.stateDir, 'state');
    const local = new SimKubernetes();
    local.configure({ stateDir: join(options.stateDir, 'clusters') });
    this.registry = new NetworkedSimKubernetes(local, { listenHost: options.listenHost, log: options.log });
    // A cluster this node initialized before a reboot is served again at once, before its kubelet starts.
    this.loaded = this.registry.serveLoaded().catch((err) => options.log?.(`cannot serve the simulated clusters: ${(err as Error).message}`));
    this.simServices = new SimServiceManager(this.root, this.registry, this.stateRoot);
    const sim = (name: string) => Object.hasOwn(SIM_UNITS, name);
    const real = inner.services;
    const simServices = this.simServices;
    this.services = {
      enable: (name) => (sim(name) ? simServices.enable(name) : real.enable(name)),
      start: (name) => (sim(name) ? simServices.start(name) : real.start(name)),
      restart: (name) => (sim(name) ? simServices.restart(name) : real.restart(name)),
      stop: (name) => (sim(name) ? simServices.stop(name) : real.stop(name)),
      isActive: (name) => (sim(name) ? simServices.isActive(name) : real.isActive(name)),
    };
    this.heartbeat = setInterval(() => void this.postKubeletStatus(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  deviceUid(): Promise<string> {
    return this.inner.deviceUid();
  }

  /** The machine's real inventory; its OS name says that its Kubernetes is simulated. */
  async inventory(): Promise<Inventory> {
    const inventory = await this.inner.inventory();
    return { ...inventory, os: { ...inventory.os, name: `${inventory.os.name} (Kubernetes simulated)` } };
  }

  /** kubeadm, helm and the distributions' killall scripts are simulated; every other command runs on the machine. */
  async exec(command: string, args: string[], options?: ExecOptions): Promise<ExecResult> {
    if (!isSimCommand(command)) return this.inner.exec(command, args, options);
    await this.loaded;
    return runSimCommand(command, args, { root: this.root, stateRoot: this.stateRoot, registry: this.registry, services: this.simServices });
  }

  httpGet(url: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<HttpResult> {
    return this.inner.httpGet(url, options);
  }

  reboot(): Promise<void> {
    return this.inner.reboot();
  }

  onReboot(listener: () => void): () => void {
    return this.inner.onReboot(listener);
  }

  /** SIMULATION: the simulated cluster API, authenticated with the kubeconfig's token. */
  kubernetes(kubeconfigPath: string): KubernetesClient {
    return new SimKubernetesClient(this.root, kubeconfigPath, this.registry);
  }

  libvirt(uri: string): Libvirt {
    return this.inner.libvirt(uri);
  }

  sessionNotice(_user: string): string {
    return SIMULATED_KUBERNETES_NOTICE;
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.registry.close();
    await this.inner.close();
  }

  /** A running kubelet posts its node's status periodically: the node that serves the cluster sees it alive. */
  private async postKubeletStatus(): Promise<void> {
    await this.loaded;
    const ctx = { root: this.root, stateRoot: this.stateRoot, registry: this.registry, warn: () => {} };
    for (const [service, kubeconfig] of KUBELETS) {
      if (!(await this.simServices.isActive(service).catch(() => false))) continue;
      await setKubeletReady(ctx, kubeconfig, true).catch(() => undefined);
    }
  }
}
