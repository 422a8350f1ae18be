/**
 * SIMULATION. A simulated Kubernetes API per simulated cluster, shared by every SimDevice in the
 * process (a module-level registry keyed by the cluster's API server endpoint `host:port`). No
 * kubelet, etcd or API server runs: the simulated services on SimDevice (sim-units.ts) and the
 * simulated kubeadm (sim-commands.ts) read the configuration the Kubernetes drivers wrote and call
 * this registry, which is as strict as the real distributions (rules in @edgeplane/protocol
 * kubernetes/): the init server creates the cluster with its token; a joiner with a wrong token or a
 * server address that is not the cluster's does not join; a kubeadm control-plane join needs the
 * uploaded certificates, which expire 2 h after their upload; a node is Ready only while its kubelet
 * runs AND the cluster has a CNI (k3s/rke2 bundle one unless told not to; kubeadm has none until an
 * add-on brings one); every control-plane node is an etcd member, and a member leaves only the way
 * upstream removes it (k3s/rke2: its Node object is deleted; kubeadm: `kubeadm reset` on the node).
 * Objects are stored with server-side apply semantics. This file is the registry (clusters, init,
 * join, reset, credentials, persistence); what a credential may do through the API is the session
 * of sim-kubernetes-session.ts. With `configure({ stateDir })` every cluster is also kept in
 * `<stateDir>/<host>_<port>.json`, so a restarted simulator process finds its clusters again (nodes
 * come back NotReady until their simulated services start).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Distribution, KUBEADM_CERTS_EXPIRED_MESSAGE, KUBEADM_UPLOADED_CERTS_TTL_MS } from '@edgeplane/protocol';
import { writeFileAtomic } from '../../atomic-file.js';
import { parseEndpoint } from '../../managers/kubernetes/endpoint.js';
import { type KubeNode, KubernetesApiError } from '../kube-client.js';
import {
  type SimApiSession,
  type SimClusterSession,
  type SimClusterState,
  scheduleWorkloads,
  simApiSession,
  updateReadiness,
} from './sim-kubernetes-session.js';
import { nodeView, type SimNodeRegistration, type SimNodeState } from './sim-node.js';
import { available, type SimDisruption } from './sim-workloads.js';

export { NO_CNI_MESSAGE, type SimApiSession, type SimClusterSession } from './sim-kubernetes-session.js';

export const SIM_RKE2_SUPERVISOR_PORT = 9345;

/** The simulated cluster refused a node. `retryable` is false when the same configuration can never succeed. */
export class SimRefusal extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'SimRefusal';
  }
}

/** What a kubeconfig of the simulated cluster holds. */
export interface SimCredentials {
  server: string;
  token: string;
  clusterName: string;
}

export interface SimInitRequest {
  distribution: Distribution;
  version: string;
  host: string;
  apiPort: number;
  token: string;
  certificateKey?: string;
  clusterName: string;
  node: SimNodeRegistration;
  /** The CNI the distribution runs itself with this configuration (undefined: none). */
  bundledCni?: string;
  /** kubeadm: init ran with --upload-certs. */
  uploadCerts?: boolean;
  /** kubeadm: ClusterConfiguration.controlPlaneEndpoint was set. */
  stableEndpoint?: boolean;
}

export interface SimJoinRequest {
  distribution: Distribution;
  /** The join address as written: a URL (k3s, rke2) or host:port (kubeadm). */
  server: string;
  token: string;
  certificateKey?: string;
  node: SimNodeRegistration;
}

/**
 * What the simulated services, commands and clients need of a simulated cluster registry: the
 * in-process SimKubernetes, or (Kubernetes simulated inside real guests) one that reaches the
 * registry of another machine over HTTP (sim-kubernetes-http.ts). A session's reads may then answer
 * asynchronously, so callers await every session call.
 */
export interface SimClusterRegistry {
  init(req: SimInitRequest): Promise<{ admin: SimCredentials; node: SimCredentials }>;
  join(req: SimJoinRequest): Promise<{ admin?: SimCredentials; node: SimCredentials }>;
  setNodeReady(creds: SimCredentials, running: boolean, message: string, kubeletVersion?: string): Promise<void>;
  resetNode(creds: { server: string; token: string }, options: { removeEtcdMember: boolean }): Promise<void>;
  uploadCerts(creds: { server: string; token: string }, certificateKey: string): Promise<void>;
  session(creds: { server: string; token: string }): SimClusterSession;
}

function key(host: string, port: number): string {
  return `${host}:${port}`;
}

function parseServer(server: string): { host: string; port: number } {
  const { host, port } = parseEndpoint(server);
  return { host, port: port ?? 443 };
}

const token = () => randomBytes(24).toString('base64url');

const fileName = (k: string) => `${k.replace(/[^a-zA-Z0-9.-]/g, '_')}.json`;

export class SimKubernetes implements SimClusterRegistry {
  private clusters = new Map<string, SimClusterState>();
  private stateDir?: string;
  private saving = new Map<string, Promise<void>>();

  /** Keep clusters in `stateDir` (and load the ones already there). */
  configure(options: { stateDir?: string }): void {
    this.stateDir = options.stateDir;
    if (!this.stateDir) return;
    let files: string[] = [];
    try {
      files = readdirSync(this.stateDir).filter((f) => f.endsWith('.json'));
    } catch {
      return; // nothing persisted yet
    }
    for (const file of files) {
      let state: SimClusterState;
      try {
        state = JSON.parse(readFileSync(join(this.stateDir, file), 'utf8')) as SimClusterState;
      } catch {
        continue; // a torn or foreign file: that cluster is gone, the others are kept
      }
      // Nothing of the previous process runs any more: every node is NotReady until its service starts.
      for (const node of Object.values(state.nodes)) Object.assign(node, { running: false, ready: false, message: 'simulated kubelet not running' });
      this.clusters.set(key(state.host, state.apiPort), state);
    }
  }

  /** Forgets every cluster (tests). */
  reset(): void {
    this.clusters.clear();
    this.stateDir = undefined;
  }

  /** The first server: creates the cluster, or restarts its init node with the same token. */
  async init(req: SimInitRequest): Promise<{ admin: SimCredentials; node: SimCredentials }> {
    const k = key(req.host, req.apiPort);
    let cluster = this.clusters.get(k);
    if (cluster) {
      if (cluster.initNode !== req.node.name) {
        throw new SimRefusal(`https://${k} already serves cluster ${cluster.name}, initialized by node ${cluster.initNode}`, false);
      }
      if (cluster.joinToken !== req.token) {
        // What k3s says when its datastore was bootstrapped with another token.
        throw new SimRefusal('bootstrap data already found and encrypted with different token', false);
      }
    } else {
      cluster = {
        host: req.host,
        apiPort: req.apiPort,
        distribution: req.distribution,
        version: req.version,
        name: req.clusterName,
        joinToken: req.token,
        certificateKey: req.certificateKey,
        adminToken: token(),
        initNode: req.node.name,
        nodes: {},
        objects: {},
        cni: req.bundledCni,
        ...(req.uploadCerts ? { certsUploadedAt: Date.now() } : {}),
        ...(req.stableEndpoint !== undefined ? { stableEndpoint: req.stableEndpoint } : {}),
      };
      this.clusters.set(k, cluster);
    }
    const node = this.register(cluster, req.node);
    await this.save(cluster);
    return { admin: this.admin(cluster), node: { server: this.server(cluster), token: node.credential, clusterName: cluster.name } };
  }

  /** A joining node: refused unless the address is the cluster's join address and the token matches. */
  async join(req: SimJoinRequest): Promise<{ admin?: SimCredentials; node: SimCredentials }> {
    const { host, port } = parseServer(req.server);
    const cluster = [...this.clusters.values()].find((c) => c.host === host);
    const wantPort = (c: SimClusterState) => (req.distribution === 'rke2' ? SIM_RKE2_SUPERVISOR_PORT : c.apiPort);
    if (!cluster || port !== wantPort(cluster)) {
      // Nothing listens there (yet): the node retries, as the real agents do.
      throw new SimRefusal(`dial tcp ${key(host, port)}: connect: connection refused (no simulated ${req.distribution} server at ${req.server})`, true);
    }
    if (cluster.distribution !== req.distribution) {
      throw new SimRefusal(`${req.server} serves a ${cluster.distribution} cluster, not ${req.distribution}`, false);
    }
    if (cluster.joinToken !== req.token) {
      const message =
        req.distribution === 'kubeadm'
          ? `couldn't validate the identity of the API Server: token id "${req.token.split('.')[0]}" is invalid for this cluster or it has expired`
          : `failed to validate join token with server ${req.server}: 401 Unauthorized`;
      throw new SimRefusal(message, false);
    }
    if (req.distribution === 'kubeadm' && req.node.role === 'control-plane') {
      // cmd/kubeadm/app/cmd/join.go: a control-plane join needs a stable controlPlaneEndpoint.
      if (cluster.stableEndpoint === false)
        throw new SimRefusal("unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address", false);
      // copycerts.go: the kubeadm-certs Secret lives 2 h after an upload; a re-upload renews it.
      if (cluster.certsUploadedAt === undefined || Date.now() - cluster.certsUploadedAt > KUBEADM_UPLOADED_CERTS_TTL_MS)
        throw new SimRefusal(`error execution phase control-plane-prepare/download-certs: ${KUBEADM_CERTS_EXPIRED_MESSAGE}`, true);
      if (req.certificateKey !== cluster.certificateKey)
        throw new SimRefusal('error downloading certs: error decoding certs: cipher: message authentication failed', false);
    }
    const node = this.register(cluster, req.node);
    await this.save(cluster);
    const creds = { node: { server: this.server(cluster), token: node.credential, clusterName: cluster.name } };
    return req.node.role === 'control-plane' ? { ...creds, admin: this.admin(cluster) } : creds;
  }

  /**
   * The kubelet behind a node credential started (running) or stopped. It is Ready while it runs
   * and the cluster has a CNI. Unknown credentials (a deleted Node) are ignored.
   */
  async setNodeReady(creds: SimCredentials, running: boolean, message: string, kubeletVersion?: string): Promise<void> {
    const { host, port } = parseServer(creds.server);
    const cluster = this.clusters.get(key(host, port));
    const node = cluster && Object.values(cluster.nodes).find((n) => n.credential === creds.token);
    if (!cluster || !node) return;
    node.running = running;
    if (running && kubeletVersion) node.kubeletVersion = kubeletVersion;
    node.runningMessage = message;
    updateReadiness(cluster);
    scheduleWorkloads(cluster);
    await this.save(cluster);
  }

  /**
   * The node behind a kubelet credential was reset (k3s/rke2 killall plus its data deleted, or
   * `kubeadm reset`): its kubelet is gone and its copy of the datastore too. Its Node object stays
   * (NotReady) until someone deletes it through the API; its etcd member stays too unless
   * `removeEtcdMember` (kubeadm reset's remove-etcd-member phase). A cluster none of whose
   * control-plane nodes holds the datastore any more is gone.
   */
  async resetNode(creds: { server: string; token: string }, options: { removeEtcdMember: boolean }): Promise<void> {
    const { host, port } = parseServer(creds.server);
    const k = key(host, port);
    const cluster = this.clusters.get(k);
    if (!cluster) return;
    const node = Object.values(cluster.nodes).find((n) => n.credential === creds.token);
    // A node whose Node object was deleted first still holds its files and datastore copy.
    const name = node?.name ?? cluster.deletedNodes?.[creds.token];
    if (!name) return;
    if (node) {
      node.running = false;
      node.runningMessage = 'Kubelet stopped posting node status.';
      // The credential dies with the node's files: a later join registers anew.
      node.credential = `reset-${token()}`;
    }
    if (cluster.deletedNodes) delete cluster.deletedNodes[creds.token];
    if (options.removeEtcdMember) cluster.etcdMembers = (cluster.etcdMembers ?? []).filter((m) => m !== name);
    cluster.dataNodes = (cluster.dataNodes ?? []).filter((m) => m !== name);
    if (cluster.dataNodes.length > 0) {
      updateReadiness(cluster);
      scheduleWorkloads(cluster);
      await this.save(cluster);
      return;
    }
    this.clusters.delete(k);
    const dir = this.stateDir;
    if (dir) {
      await (this.saving.get(k) ?? Promise.resolve());
      await rm(join(dir, fileName(k)), { force: true });
    }
  }

  /** An API session for a kubeconfig's server + token (sim-kubernetes-session.ts); rejects like an unreachable or refusing API server. */
  session(creds: { server: string; token: string }): SimApiSession {
    const { host, port } = parseServer(creds.server);
    const cluster = this.clusters.get(key(host, port));
    if (!cluster) throw new KubernetesApiError(`connect ECONNREFUSED ${key(host, port)} (no simulated cluster there)`);
    return simApiSession(cluster, creds.token, (c) => this.save(c));
  }

  /**
   * The simulated workload probe: answers when at least one replica of `workload` (namespace/name)
   * runs on a Ready node of the cluster at `endpoint` (https://host:port).
   */
  probe(endpoint: string, workload: string): { ok: boolean; available: number; nodes: string[] } {
    const cluster = this.clusterAt(endpoint);
    const w = cluster?.workloads?.[workload];
    if (!cluster || !w) return { ok: false, available: 0, nodes: [] };
    const n = available(cluster, w);
    return { ok: n > 0, available: n, nodes: w.pods.map((p) => p.node ?? '-') };
  }

  /** Replica outages seen by the cluster at `endpoint`: pods whose node went NotReady under them. */
  disruptions(endpoint: string): SimDisruption[] {
    return [...(this.clusterAt(endpoint)?.disruptions ?? [])];
  }

  /** The simulated etcd members and Node view of the cluster at `endpoint` (tests, diagnostics). */
  inspect(endpoint: string): { etcdMembers: string[]; nodes: KubeNode[]; cni?: string; certsUploadedAt?: number } | undefined {
    const c = this.clusterAt(endpoint);
    return (
      c && {
        etcdMembers: [...(c.etcdMembers ?? [])],
        nodes: Object.values(c.nodes).map(nodeView),
        ...(c.cni ? { cni: c.cni } : {}),
        ...(c.certsUploadedAt !== undefined ? { certsUploadedAt: c.certsUploadedAt } : {}),
      }
    );
  }

  /**
   * `kubeadm init phase upload-certs --upload-certs`: the control-plane certificates are stored in the
   * cluster again (encrypted with `certificateKey`) for another 2 h. Needs an admin credential.
   */
  async uploadCerts(creds: { server: string; token: string }, certificateKey: string): Promise<void> {
    const cluster = this.clusterAt(creds.server);
    if (!cluster) throw new KubernetesApiError(`connect ECONNREFUSED ${creds.server} (no simulated cluster there)`);
    if (creds.token !== cluster.adminToken) throw new KubernetesApiError('Unauthorized', 401);
    cluster.certificateKey = certificateKey;
    cluster.certsUploadedAt = Date.now();
    await this.save(cluster);
  }

  /** Test hook: makes the uploaded certificates of the cluster at `endpoint` older by `ms` (a join hours later). */
  async ageUploadedCerts(endpoint: string, ms: number): Promise<void> {
    const cluster = this.clusterAt(endpoint);
    if (cluster?.certsUploadedAt === undefined) return;
    cluster.certsUploadedAt -= ms;
    await this.save(cluster);
  }

  private clusterAt(endpoint: string): SimClusterState | undefined {
    const { host, port } = parseServer(endpoint);
    return this.clusters.get(key(host, port));
  }

  /** True when this registry holds a cluster whose API host is `host` (on any port). */
  servesHost(host: string): boolean {
    return [...this.clusters.values()].some((c) => c.host === host);
  }

  /** The API endpoints (`host`, `apiPort`) of the clusters this registry holds. */
  endpoints(): { host: string; apiPort: number; distribution: Distribution }[] {
    return [...this.clusters.values()].map((c) => ({ host: c.host, apiPort: c.apiPort, distribution: c.distribution }));
  }

  /** Node names of the cluster served at `host:port` (tests, diagnostics). */
  nodeNames(host: string, port: number): string[] {
    return Object.keys(this.clusters.get(key(host, port))?.nodes ?? {}).sort();
  }

  private register(cluster: SimClusterState, reg: SimNodeRegistration): SimNodeState {
    const existing = cluster.nodes[reg.name];
    const node: SimNodeState = { ...reg, running: false, ready: false, message: 'kubelet starting', credential: existing?.credential ?? token() };
    node.labels = { 'kubernetes.io/hostname': reg.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...reg.labels };
    node.unschedulable = existing?.unschedulable;
    cluster.nodes[reg.name] = node;
    cluster.etcdMembers ??= [];
    cluster.dataNodes ??= [];
    if (reg.role === 'control-plane' && !cluster.etcdMembers.includes(reg.name)) cluster.etcdMembers.push(reg.name);
    if (reg.role === 'control-plane' && !cluster.dataNodes.includes(reg.name)) cluster.dataNodes.push(reg.name);
    return node;
  }

  private server(cluster: SimClusterState): string {
    return `https://${cluster.host.includes(':') ? `[${cluster.host}]` : cluster.host}:${cluster.apiPort}`;
  }

  private admin(cluster: SimClusterState): SimCredentials {
    return { server: this.server(cluster), token: cluster.adminToken, clusterName: cluster.name };
  }

  private save(cluster: SimClusterState): Promise<void> {
    const dir = this.stateDir;
    if (!dir) return Promise.resolve();
    const k = key(cluster.host, cluster.apiPort);
    // One write at a time per cluster, in order, so the file always ends with the latest state.
    const next = (this.saving.get(k) ?? Promise.resolve()).then(() => writeFileAtomic(join(dir, fileName(k)), JSON.stringify(cluster, null, 1)));
    this.saving.set(
      k,
      next.catch(() => {}),
    );
    return next;
  }
}

/** The registry every SimDevice of this process uses. */
export const simKubernetes = new SimKubernetes();
