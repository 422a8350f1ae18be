import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type HostSpec,
  KUBEADM_FATAL,
  type KubernetesSpec,
  type KubernetesStatus,
  kubernetesSpecDigest,
  kubernetesVersionCore,
  kubernetesVersionProblem,
  type ManagerError,
  rulesFor,
} from '@edgeplane/protocol';
import type { Device } from '../../device/device.js';
import { ExecError } from '../../device/exec.js';
import type { KubeNode } from '../../device/kube-client.js';
import { withServer } from '../../device/kubeconfig.js';
import { ServiceError } from '../../device/services.js';
import { drainBeforeLeave } from '../maintenance/leave-drain.js';
import { type Manager, type ManagerContext, ManagerFailure } from '../manager.js';
import { artifactInstalled, installArtifact } from './artifact-install.js';
import { applyCniAddon, cniAddon, cniToInstall } from './cni.js';
import type { KubernetesDriver } from './driver.js';
import { driverFor } from './drivers.js';
import { apiServerUrl, parseEndpoint } from './endpoint.js';
import { filesMatch, markerContent, nodeFiles, writeFiles } from './node-files.js';
import { deleteOwnNode, readNodeState, resetNode, writeNodeState } from './node-reset.js';

export interface KubernetesManagerOptions {
  /** How long apply waits for the node to become Ready (default 10 minutes). */
  readyTimeoutMs?: number;
  /** Interval between Ready checks (default 2 s on a real device, 50 ms on a simulated one). */
  pollIntervalMs?: number;
  /** The agent's data dir: the download cache of distribution artifacts (agent mode); default a temp dir. */
  dataDir?: string;
}

/**
 * The `kubernetes` manager: writes the node's distribution configuration through its driver,
 * enables and starts the distribution's service through the device's service manager (a changed
 * configuration restarts it; an identical one leaves it alone), runs kubeadm init/join once where
 * the distribution needs it, and waits until the API reports the node Ready.
 *
 * The node that initializes a cluster whose CNI the distribution does not bring (kubeadm always;
 * k3s/rke2 with another CNI) installs the CNI add-on as soon as its API answers, before waiting for
 * Ready (cni.ts). A kubeadm init node uploads the control-plane certificates again when the server
 * asks (spec.uploadCerts: a control-plane join is coming and the last upload may have expired).
 * A node that leaves deletes its Node object first (k3s/rke2: that removes its etcd member too),
 * then resets (kubeadm reset removes the etcd member).
 *
 * Failures: an unsupported distribution/version, a spec without a join token or without the CNI
 * add-on it needs fails `prepare`, not retryable. A refused join (wrong token, wrong certificate
 * key, a config the binary cannot read: @edgeplane/protocol KUBEADM_FATAL) is not retryable either:
 * retrying the same spec cannot succeed, the server must send a new one. An unreachable join
 * address, expired uploaded certificates (the init node uploads them again), a service that fails
 * for another reason, or a node that does not become Ready in time is retryable.
 */
export class KubernetesManager implements Manager<'kubernetes'> {
  readonly name = 'kubernetes' as const;
  private current: KubernetesStatus = { phase: 'Pending', ready: false };
  private readonly readyTimeoutMs: number;
  private readonly pollIntervalMs: number;

  constructor(
    private readonly device: Device,
    private readonly options: KubernetesManagerOptions = {},
  ) {
    this.readyTimeoutMs = options.readyTimeoutMs ?? 10 * 60_000;
    this.pollIntervalMs = options.pollIntervalMs ?? (device.kind === 'simulated' ? 50 : 2_000);
  }

  async status(): Promise<KubernetesStatus> {
    return this.current;
  }

  async converged(desired: KubernetesSpec | undefined): Promise<boolean> {
    if (!desired) return (await readNodeState(this.device)) === undefined;
    try {
      if (kubernetesVersionProblem(desired.distribution, desired.version)) return false;
      const driver = driverFor(desired.distribution);
      if (!(await filesMatch(this.device.files, nodeFiles(driver, desired)))) return false;
      if (!(await artifactInstalled(this.device, desired))) return false;
      const bootstrap = driver.bootstrap?.(desired);
      if (bootstrap && (await this.device.files.readText(bootstrap.marker)) !== markerContent(desired)) return false;
      const upload = driver.uploadCerts?.(desired);
      if (upload && (await this.device.files.readText(upload.marker)) !== `${desired.uploadCerts}\n`) return false;
      if (!(await this.device.services?.isActive(driver.serviceName(desired)))) return false;
      const node = await this.device.kubernetes?.(driver.nodeKubeconfig(desired)).readNode(desired.nodeName);
      if (!node?.ready) return false;
      await this.ready(desired, driver, node);
      return true;
    } catch {
      return false;
    }
  }

  async prepare(desired: KubernetesSpec | undefined, _ctx?: ManagerContext, spec?: HostSpec): Promise<void> {
    if (!desired) return;
    const problem = kubernetesVersionProblem(desired.distribution, desired.version);
    if (problem) this.fail('prepare', false, problem.message);
    try {
      parseEndpoint(desired.controlPlaneEndpoint);
    } catch (err) {
      this.fail('prepare', false, `controlPlaneEndpoint: ${(err as Error).message}`);
    }
    if (!desired.token && (!desired.init || desired.distribution === 'kubeadm')) this.fail('prepare', false, 'the spec carries no join token');
    if (!desired.init && desired.role === 'control-plane' && desired.distribution !== 'kubeadm' && !desired.server && !desired.controlPlaneEndpoint) {
      this.fail('prepare', false, 'a joining server needs the address of the cluster');
    }
    if (!this.device.services || !this.device.kubernetes) this.fail('prepare', false, 'this device has no service manager or Kubernetes client');
    if (driverFor(desired.distribution).bootstrap && !this.device.exec) this.fail('prepare', false, 'this device cannot run commands (kubeadm)');
    const cni = cniToInstall(desired);
    if (cni !== undefined && !(cni && cniAddon(spec, cni))) {
      this.fail(
        'prepare',
        false,
        cni
          ? `${desired.distribution} does not bring the CNI ${cni}: the profile needs an add-on named ${cni} that installs it (nodes stay NotReady without a CNI)`
          : `${desired.distribution} brings no CNI: the profile needs a network layer naming one and an add-on of that name that installs it`,
        desired,
      );
    }
  }

  async apply(desired: KubernetesSpec | undefined, ctx: ManagerContext, spec?: HostSpec): Promise<void> {
    if (!desired) {
      await this.leave(ctx);
      return;
    }
    await this.prepare(desired, ctx, spec);
    const driver = driverFor(desired.distribution);
    const services = this.device.services!;
    const service = driver.serviceName(desired);
    this.set({ phase: 'Configuring', ready: false, message: `writing ${desired.distribution} configuration` }, desired);
    ctx.reportProgress();

    await this.stopPreviousService(service);
    // Agent mode: the distribution comes from the spec's artifact (artifact-install.ts), installed before its config.
    const installed = await installArtifact(this.device, desired, { cacheDir: this.options.dataDir ?? join(tmpdir(), 'edgeplane-agent'), signal: ctx.signal });
    if (installed.length > 0) {
      ctx.log.info({ files: installed }, 'kubernetes distribution installed');
      ctx.emitEvent(
        'Normal',
        'DistributionInstalled',
        `${desired.distribution} ${desired.version} installed from ${desired.artifact?.image}@${desired.artifact?.digest}`,
      );
    }
    const written = await writeFiles(this.device.files, nodeFiles(driver, desired));
    if (written.length > 0) ctx.log.info({ files: written }, 'kubernetes configuration written');
    try {
      await services.enable(service);
      // kubeadm init/join just read the written files: nothing is left unapplied.
      const bootstrapped = await this.bootstrap(driver, desired, ctx);
      this.set({ phase: 'Starting', ready: false, message: `starting ${service}` }, desired);
      ctx.reportProgress();
      const active = await services.isActive(service);
      // A new binary runs only after a restart, whatever the distribution reads its config at.
      if ((written.length > 0 && driver.restartAppliesConfig) || (installed.length > 0 && active)) {
        // Restart even when not active: a unit still activating runs the old configuration.
        await services.restart(service);
        ctx.emitEvent('Normal', active ? 'ServiceRestarted' : 'ServiceStarted', `${service} ${active ? 'restarted for a changed configuration' : 'started'}`);
      } else if (!active) {
        await services.start(service);
        ctx.emitEvent('Normal', 'ServiceStarted', `${service} started`);
      } else if (written.length > 0 && !bootstrapped) {
        ctx.emitEvent(
          'Warning',
          'ConfigNotApplied',
          `${desired.distribution} reads its configuration only at init/join; the change is not applied to the running node`,
        );
      }
    } catch (err) {
      if (err instanceof ManagerFailure) throw err;
      if (err instanceof ServiceError) {
        if (!err.retryable) ctx.emitEvent('Warning', desired.init ? 'ServiceFailed' : 'JoinRefused', err.message);
        this.fail('apply', err.retryable, err.message, desired);
      }
      throw err;
    }
    await writeNodeState(this.device, { distribution: desired.distribution, service, nodeName: desired.nodeName, cluster: desired.cluster });
    await this.uploadCerts(driver, desired, ctx);
    await this.installCni(driver, desired, ctx, spec);
    const node = await this.waitReady(desired, driver, ctx);
    await this.ready(desired, driver, node);
    ctx.emitEvent('Normal', 'NodeReady', `node ${desired.nodeName} is Ready (${node.kubeletVersion})`);
  }

  /** A role or distribution change leaves the old service running; stop it first. */
  private async stopPreviousService(service: string): Promise<void> {
    const state = await readNodeState(this.device);
    if (state?.service && state.service !== service) await this.device.services?.stop(state.service);
  }

  /**
   * The spec has no Kubernetes any more (the cluster was deleted or the host removed from it): reset
   * the node so the host can serve another cluster. Draining first is the server's part of the flow.
   */
  private async leave(ctx: ManagerContext): Promise<void> {
    const state = await readNodeState(this.device);
    if (state) {
      this.current = {
        phase: 'Configuring',
        ready: false,
        distribution: state.distribution,
        nodeName: state.nodeName,
        message: `leaving cluster ${state.cluster}`,
      };
      ctx.reportProgress();
      // Scale in: the node's pods move to the remaining nodes before it goes (maintenance/leave-drain.ts).
      const drained = await drainBeforeLeave(this.device, state, { timeoutMs: 60_000, signal: ctx.signal });
      ctx.emitEvent('Normal', 'NodeDrained', `node ${state.nodeName} before leaving: ${drained}`);
      // While the node's own API endpoint still runs (k3s/rke2 kubeconfigs name 127.0.0.1).
      const deleted = await deleteOwnNode(this.device, state);
      if (deleted === true) {
        const how =
          rulesFor(state.distribution).etcdMemberRemoval === 'delete-node'
            ? `; ${state.distribution} removes its etcd member with it`
            : '; kubeadm reset removes its etcd member';
        ctx.emitEvent('Normal', 'NodeDeleted', `Node ${state.nodeName} deleted from cluster ${state.cluster}${how}`);
      } else {
        ctx.emitEvent(
          'Warning',
          'NodeNotDeleted',
          `Node ${state.nodeName} could not be deleted (${deleted}): delete it with kubectl delete node ${state.nodeName}`,
        );
      }
      try {
        await resetNode(this.device, state, ctx.signal);
      } catch (err) {
        this.fail('apply', true, `cannot reset the node: ${(err as Error).message}`);
      }
      ctx.emitEvent('Normal', 'NodeReset', `node ${state.nodeName} left cluster ${state.cluster} and was reset`);
    }
    this.current = { phase: 'Pending', ready: false, message: 'no Kubernetes in the desired spec' };
  }

  /** kubeadm init/join, exactly once per cluster (a marker records it). True when it ran now. */
  private async bootstrap(driver: KubernetesDriver, desired: KubernetesSpec, ctx: ManagerContext): Promise<boolean> {
    const cmd = driver.bootstrap?.(desired);
    if (!cmd) return false;
    const marker = await this.device.files.readText(cmd.marker);
    if (marker === markerContent(desired)) return false;
    if (marker !== undefined) {
      this.fail(
        'apply',
        false,
        `this node was already bootstrapped (${marker.trim()}); it must be reset before it can join cluster ${desired.cluster}`,
        desired,
      );
    }
    this.set({ phase: 'Configuring', ready: false, message: `running ${cmd.command} ${cmd.args[0]}` }, desired);
    ctx.reportProgress();
    try {
      await this.device.exec!(cmd.command, cmd.args, { timeoutMs: 15 * 60_000, signal: ctx.signal });
    } catch (err) {
      if (!(err instanceof ExecError)) throw err;
      const retryable = err.retryable ?? !KUBEADM_FATAL.test(err.stderr);
      if (!retryable) ctx.emitEvent('Warning', 'JoinRefused', err.message);
      this.fail('apply', retryable, err.message, desired);
    }
    await this.device.files.writeAtomic(cmd.marker, markerContent(desired), 0o644);
    ctx.emitEvent('Normal', desired.init ? 'ClusterInitialized' : 'NodeJoined', `${cmd.command} ${cmd.args[0]} succeeded`);
    return true;
  }

  /** kubeadm init node: `kubeadm init phase upload-certs` once per spec.uploadCerts value (a marker records it). */
  private async uploadCerts(driver: KubernetesDriver, desired: KubernetesSpec, ctx: ManagerContext): Promise<void> {
    const cmd = driver.uploadCerts?.(desired);
    if (!cmd || (await this.device.files.readText(cmd.marker)) === `${desired.uploadCerts}\n`) return;
    try {
      await this.device.exec!(cmd.command, cmd.args, { timeoutMs: 5 * 60_000, signal: ctx.signal });
    } catch (err) {
      if (!(err instanceof ExecError)) throw err;
      this.fail('apply', err.retryable ?? !KUBEADM_FATAL.test(err.stderr), `uploading the control-plane certificates: ${err.message}`, desired);
    }
    await this.device.files.writeAtomic(cmd.marker, `${desired.uploadCerts}\n`, 0o644);
    ctx.emitEvent('Normal', 'CertificatesUploaded', 'control-plane certificates uploaded for joining control-plane nodes (valid 2 h)');
  }

  /**
   * The init node of a cluster whose distribution brings no CNI (or not this one) applies the CNI
   * add-on once its API answers, before waiting for Ready (no node is Ready without a CNI).
   */
  private async installCni(driver: KubernetesDriver, desired: KubernetesSpec, ctx: ManagerContext, spec?: HostSpec): Promise<void> {
    const name = cniToInstall(desired);
    const addon = name ? cniAddon(spec, name) : undefined;
    if (!addon) return; // prepare refused a spec that needs one and has none
    const client = this.device.kubernetes!(driver.adminKubeconfig);
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      ctx.signal.throwIfAborted();
      const node = await client.readNode(desired.nodeName).catch((err: Error) => err);
      if (node && !(node instanceof Error) && node.ready) return; // the CNI runs already
      if (node && !(node instanceof Error)) break; // the API answers: the node registered
      if (Date.now() >= deadline)
        this.fail(
          'health',
          true,
          `the API of node ${desired.nodeName} does not answer after ${Math.round(this.readyTimeoutMs / 1000)} s: ${node?.message ?? 'node not registered'}`,
          desired,
        );
      await new Promise((r) => setTimeout(r, this.pollIntervalMs));
    }
    this.set({ phase: 'Configuring', ready: false, message: `installing the CNI ${name} (add-on ${addon.name})` }, desired);
    ctx.reportProgress();
    try {
      const objects = await applyCniAddon(this.device, driver, addon, ctx.signal);
      ctx.emitEvent('Normal', 'CniInstalled', `CNI ${name} installed from add-on ${addon.name} (${objects} object(s)) before waiting for Ready`);
    } catch (err) {
      const status = (err as { status?: number }).status;
      const retryable = err instanceof ExecError ? (err.retryable ?? true) : status !== 400 && status !== 422;
      ctx.emitEvent('Warning', 'CniFailed', `CNI add-on ${addon.name}: ${(err as Error).message}`);
      this.fail('apply', retryable, `CNI add-on ${addon.name}: ${(err as Error).message}`, desired);
    }
  }

  private async waitReady(desired: KubernetesSpec, driver: KubernetesDriver, ctx: ManagerContext): Promise<KubeNode> {
    const client = this.device.kubernetes!(driver.nodeKubeconfig(desired));
    const deadline = Date.now() + this.readyTimeoutMs;
    let last = 'not registered yet';
    for (;;) {
      ctx.signal.throwIfAborted();
      try {
        const node = await client.readNode(desired.nodeName);
        if (node?.ready) return node;
        last = node ? (node.message ?? 'NotReady') : 'not registered yet';
      } catch (err) {
        last = (err as Error).message;
      }
      if (this.current.message !== `waiting for node ${desired.nodeName}: ${last}`) {
        this.set({ phase: 'NotReady', ready: false, message: `waiting for node ${desired.nodeName}: ${last}` }, desired);
        ctx.reportProgress();
      }
      if (Date.now() >= deadline)
        this.fail('health', true, `node ${desired.nodeName} is not Ready after ${Math.round(this.readyTimeoutMs / 1000)} s: ${last}`, desired);
      await new Promise((r) => setTimeout(r, this.pollIntervalMs));
    }
  }

  private async ready(desired: KubernetesSpec, driver: KubernetesDriver, node: KubeNode): Promise<void> {
    let kubeconfig: string | undefined;
    if (desired.init) {
      const text = await this.device.files.readText(driver.adminKubeconfig);
      // Distributions write it for use on the node (https://127.0.0.1:6443); operators need the endpoint.
      if (text) kubeconfig = withServer(text, apiServerUrl(desired.controlPlaneEndpoint));
    }
    const skew = kubernetesVersionCore(node.kubeletVersion) !== kubernetesVersionCore(desired.version);
    // Agent mode: the agent installed the binary, so a node at another version is that artifact's fault.
    if (skew && desired.artifact)
      this.fail(
        'health',
        false,
        `node runs ${node.kubeletVersion} after installing ${desired.artifact.image}@${desired.artifact.digest}; the profile asks for ${desired.version}`,
        desired,
      );
    this.set(
      {
        phase: 'Ready',
        ready: true,
        version: node.kubeletVersion,
        ...(kubeconfig ? { kubeconfig } : {}),
        specDigest: kubernetesSpecDigest(desired),
        message: skew ? `node runs ${node.kubeletVersion}, the profile asks for ${desired.version}` : `node ${desired.nodeName} is Ready`,
      },
      desired,
    );
  }

  private set(status: Omit<KubernetesStatus, 'distribution' | 'nodeName'>, desired?: KubernetesSpec): void {
    this.current = {
      ...status,
      ...(desired ? { distribution: desired.distribution, nodeName: desired.nodeName } : {}),
      // Only what the node reports: never the version asked for (the binary may be another).
      version: status.version,
    };
  }

  private fail(phase: ManagerError['phase'], retryable: boolean, message: string, desired?: KubernetesSpec): never {
    const error: ManagerError = { phase, component: 'kubernetes', retryable, message };
    this.set({ phase: 'Failed', ready: false, message, error }, desired);
    throw new ManagerFailure(error);
  }
}
