/**
 * SIMULATION. One simulated cluster's state and the API session a caller gets on it: an admin
 * (kubeconfig of a control-plane node) or a node's kubelet, with the authorization the real API
 * server applies to them (the Node authorizer and NodeRestriction: a kubelet reads, cordons, drains
 * and deletes only its own Node; only an admin applies objects). Applying a known CNI makes the
 * nodes whose kubelet runs Ready. The registry that creates clusters, lets nodes init, join and
 * reset, and hands out the credentials these sessions are opened with is sim-kubernetes.ts.
 */
import { type Distribution, KNOWN_CNIS } from '@edgeplane/protocol';
import { type KubeNode, type KubeObject, KubernetesApiError } from '../kube-client.js';
import { nodeObject, nodeView, type SimNodeState } from './sim-node.js';
import { SimObjectStore, type StoredObject } from './sim-object-store.js';
import { evictRound, recordNodeDown, type SimDisruption, type SimWorkload, schedule } from './sim-workloads.js';

/** The state of one simulated cluster (kept by the registry, persisted as JSON). */
export interface SimClusterState {
  host: string;
  apiPort: number;
  distribution: Distribution;
  version: string;
  name: string;
  /** Join secret as the distribution checks it (k3s/rke2 token, kubeadm bootstrap token). */
  joinToken: string;
  /** kubeadm: key control-plane joiners need to fetch the uploaded certificates. */
  certificateKey?: string;
  adminToken: string;
  initNode: string;
  nodes: Record<string, SimNodeState>;
  objects: Record<string, StoredObject>;
  /** Simulated workloads (sim-workloads.ts) and the replica outages they saw. */
  workloads?: Record<string, SimWorkload>;
  disruptions?: SimDisruption[];
  /** Simulated etcd members: every control-plane node that joined, until upstream's way of removing it ran. */
  etcdMembers?: string[];
  /** Control-plane nodes that still hold a copy of the datastore; the cluster is gone once none does. */
  dataNodes?: string[];
  /** The CNI running in the cluster (bundled or applied); undefined: none, every node stays NotReady. */
  cni?: string;
  /** kubeadm: when the control-plane certificates were last uploaded (`--upload-certs`), ms since the epoch. */
  certsUploadedAt?: number;
  /** kubeadm: ClusterConfiguration had a controlPlaneEndpoint (control-plane joins need one). */
  stableEndpoint?: boolean;
  /** Kubelet credentials of deleted Node objects -> node name: the node's files (and datastore copy) are still on it. */
  deletedNodes?: Record<string, string>;
}

/** Why a kubelet that runs is not Ready without a CNI, as the kubelet reports it. */
export const NO_CNI_MESSAGE =
  'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized';

/** One caller's view of a simulated cluster's API (admin or a node's kubelet). */
export interface SimApiSession {
  readNode(name: string): KubeNode | undefined;
  apply(object: KubeObject, fieldManager: string): Promise<KubeObject>;
  get(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject | undefined;
  list(): KubeObject[];
  /** Marks a node (un)schedulable. A kubelet may do it to its own node only (the simulation's NodeRestriction). */
  cordon(name: string, unschedulable: boolean): Promise<void>;
  /** One eviction round on a node (see sim-workloads.ts evictRound); callers repeat until nothing remains. */
  evict(name: string): Promise<{ evicted: number; remaining: number }>;
  /**
   * Deletes a Node object (a kubelet may delete only its own, NodeRestriction). On k3s and rke2 the
   * etcd member controller then removes the node's etcd member (k3s pkg/etcd/member_controller.go onRemove).
   */
  deleteNode(name: string): Promise<void>;
}

/** A SimApiSession whose calls may answer asynchronously (a registry reached over HTTP). */
export type SimClusterSession = {
  [K in keyof SimApiSession]: (...args: Parameters<SimApiSession[K]>) => ReturnType<SimApiSession[K]> | Promise<Awaited<ReturnType<SimApiSession[K]>>>;
};

/** The CNI an applied object installs: a DaemonSet, HelmChart or helm release named after a known CNI. */
function cniOf(object: KubeObject): string | undefined {
  const named = (text: unknown) => (typeof text === 'string' ? KNOWN_CNIS.find((c) => text.toLowerCase().includes(c)) : undefined);
  if (object.kind === 'DaemonSet') return named(object.metadata.name);
  if (object.kind === 'HelmChart') return named((object.spec as { chart?: string } | undefined)?.chart) ?? named(object.metadata.name);
  if (object.kind === 'Secret' && object.type === 'helm.sh/release.v1') {
    const labels = (object.metadata.labels ?? {}) as Record<string, string>;
    const data = (object.data ?? {}) as { release?: string };
    let chart: string | undefined;
    try {
      chart = (JSON.parse(Buffer.from(data.release ?? '', 'base64').toString()) as { chart?: string }).chart;
    } catch {
      chart = undefined;
    }
    return named(chart) ?? named(labels.name);
  }
  return undefined;
}

/** Places the cluster's simulated workloads on its schedulable Ready nodes (sim-workloads.ts). */
export function scheduleWorkloads(cluster: SimClusterState): void {
  schedule(cluster, new SimObjectStore(cluster.objects, cluster.distribution).list());
}

/** Ready = the kubelet runs and the cluster has a CNI; a node that stops being Ready is a replica outage. */
export function updateReadiness(cluster: SimClusterState): void {
  for (const node of Object.values(cluster.nodes)) {
    const ready = node.running === true && cluster.cni !== undefined;
    if (node.ready && !ready) recordNodeDown(cluster, node.name);
    node.ready = ready;
    node.message = !node.running
      ? (node.runningMessage ?? 'kubelet not running')
      : ready
        ? (node.runningMessage ?? 'kubelet is posting ready status')
        : NO_CNI_MESSAGE;
  }
}

/**
 * The API session of `token` (the cluster's admin token or a node's kubelet credential) on `cluster`;
 * `save` persists the cluster after every change. Rejects an unknown token like the API server (401).
 */
export function simApiSession(cluster: SimClusterState, token: string, save: (cluster: SimClusterState) => Promise<void>): SimApiSession {
  const admin = token === cluster.adminToken;
  const node = admin ? undefined : Object.values(cluster.nodes).find((n) => n.credential === token);
  if (!admin && !node) throw new KubernetesApiError('Unauthorized', 401);
  const store = new SimObjectStore(cluster.objects, cluster.distribution);
  return {
    readNode: (name) => {
      // The Node authorizer lets a kubelet read only its own Node.
      if (node && node.name !== name) throw new KubernetesApiError(`nodes "${name}" is forbidden: node "${node.name}" cannot get other nodes`, 403);
      const n = cluster.nodes[name];
      return n && nodeView(n);
    },
    apply: async (object, fieldManager) => {
      if (!admin) throw new KubernetesApiError(`${object.kind} is forbidden for node ${node?.name}`, 403);
      const stored = store.apply(object, fieldManager);
      const cni = cluster.cni ? undefined : cniOf(object);
      if (cni) {
        // The CNI's DaemonSet runs on every node and writes its config: kubelets report NetworkReady.
        cluster.cni = cni;
        updateReadiness(cluster);
      }
      scheduleWorkloads(cluster);
      await save(cluster);
      return stored;
    },
    cordon: async (name, unschedulable) => {
      if (node && node.name !== name) throw new KubernetesApiError(`nodes "${name}" is forbidden: node "${node.name}" cannot modify other nodes`, 403);
      const n = cluster.nodes[name];
      if (!n) throw new KubernetesApiError(`nodes "${name}" not found`, 404);
      n.unschedulable = unschedulable;
      scheduleWorkloads(cluster);
      await save(cluster);
    },
    evict: async (name) => {
      if (node && node.name !== name) throw new KubernetesApiError(`nodes "${name}" is forbidden: node "${node.name}" cannot drain other nodes`, 403);
      const result = evictRound(cluster, store.list(), name);
      await save(cluster);
      return result;
    },
    deleteNode: async (name) => {
      if (node && node.name !== name) throw new KubernetesApiError(`nodes "${name}" is forbidden: node "${node.name}" cannot delete other nodes`, 403);
      const deleted = cluster.nodes[name];
      if (!deleted) throw new KubernetesApiError(`nodes "${name}" not found`, 404);
      cluster.deletedNodes = { ...cluster.deletedNodes, [deleted.credential]: name };
      delete cluster.nodes[name];
      // k3s/rke2's etcd member controller removes the member of a deleted etcd node; kubeadm does not.
      if (cluster.distribution !== 'kubeadm') cluster.etcdMembers = (cluster.etcdMembers ?? []).filter((m) => m !== name);
      scheduleWorkloads(cluster);
      await save(cluster);
    },
    get: (apiVersion, kind, name, namespace) =>
      apiVersion === 'v1' && kind === 'Node' ? cluster.nodes[name] && nodeObject(cluster.nodes[name]) : store.get(apiVersion, kind, name, namespace),
    list: () => [...Object.values(cluster.nodes).map(nodeObject), ...store.list()],
  };
}
