/**
 * SIMULATION. A tiny scheduler for the simulated clusters (sim-kubernetes.ts), so that availability
 * during an upgrade is measured, not assumed: every Deployment (apps/v1) applied to a simulated
 * cluster gets `spec.replicas` pods, spread over Ready, schedulable nodes (fewest replicas of that
 * Deployment first). A pod is available while its node is Ready. Cordon marks a node unschedulable;
 * drain evicts its pods one at a time, each eviction allowed only while the matching
 * PodDisruptionBudget (policy/v1, same selector) stays satisfied, and the evicted pod is scheduled
 * again at once on another node. A node that goes NotReady while pods are bound to it records a
 * disruption (what a workload would feel as an outage of that replica). No containers run.
 */
import type { KubeObject } from '../kube-client.js';

export interface SimPod {
  name: string;
  node?: string;
}

export interface SimWorkload {
  replicas: number;
  selector: string;
  pods: SimPod[];
}

export interface SimDisruption {
  workload: string;
  pod: string;
  node: string;
  at: string;
}

/** What the scheduler needs of a cluster's state (a SimClusterState). */
export interface SchedulableCluster {
  nodes: Record<string, { ready: boolean; unschedulable?: boolean }>;
  workloads?: Record<string, SimWorkload>;
  disruptions?: SimDisruption[];
}

function spec(o: KubeObject): Record<string, any> {
  return (o.spec ?? {}) as Record<string, any>;
}

const wkey = (o: KubeObject) => `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
const selectorOf = (o: KubeObject) => JSON.stringify(spec(o).selector?.matchLabels ?? {});

/** Brings workloads in line with the Deployments in `objects` and places pending pods. */
export function schedule(cluster: SchedulableCluster, objects: KubeObject[]): void {
  cluster.workloads ??= {};
  const workloads = cluster.workloads;
  const deployments = objects.filter((o) => o.apiVersion === 'apps/v1' && o.kind === 'Deployment');
  const keep = new Set(deployments.map(wkey));
  for (const k of Object.keys(workloads)) if (!keep.has(k)) delete workloads[k];
  for (const d of deployments) {
    const k = wkey(d);
    workloads[k] ??= { replicas: 0, selector: selectorOf(d), pods: [] };
    const w = workloads[k];
    w.replicas = Number(spec(d).replicas ?? 1);
    w.selector = selectorOf(d);
    while (w.pods.length > w.replicas) w.pods.pop();
    while (w.pods.length < w.replicas) w.pods.push({ name: `${d.metadata.name}-${w.pods.length}` });
  }
  for (const w of Object.values(workloads)) {
    for (const pod of w.pods) {
      if (pod.node && !cluster.nodes[pod.node]) pod.node = undefined; // the node was removed
      if (!pod.node) pod.node = pickNode(cluster, w);
    }
  }
}

function pickNode(cluster: SchedulableCluster, w: SimWorkload): string | undefined {
  const candidates = Object.entries(cluster.nodes)
    .filter(([, n]) => n.ready && !n.unschedulable)
    .map(([name]) => name)
    .sort();
  let best: string | undefined;
  let bestCount = Number.POSITIVE_INFINITY;
  for (const name of candidates) {
    const count = w.pods.filter((p) => p.node === name).length;
    if (count < bestCount) {
      best = name;
      bestCount = count;
    }
  }
  return best;
}

export function available(cluster: SchedulableCluster, w: SimWorkload): number {
  return w.pods.filter((p) => p.node && cluster.nodes[p.node]?.ready).length;
}

/** Minimum available pods the workload's PodDisruptionBudget demands (0 without one). */
function minAvailable(w: SimWorkload, objects: KubeObject[]): number {
  const pdb = objects.find((o) => o.apiVersion === 'policy/v1' && o.kind === 'PodDisruptionBudget' && selectorOf(o) === w.selector);
  if (!pdb) return 0;
  const s = spec(pdb);
  if (s.minAvailable !== undefined) return Number(s.minAvailable);
  if (s.maxUnavailable !== undefined) return w.replicas - Number(s.maxUnavailable);
  return 0;
}

/**
 * One round of draining `node`: evicts every pod whose PodDisruptionBudget allows it (and schedules
 * it elsewhere). Returns how many were evicted and how many are still on the node.
 */
export function evictRound(cluster: SchedulableCluster, objects: KubeObject[], node: string): { evicted: number; remaining: number } {
  let evicted = 0;
  for (const w of Object.values(cluster.workloads ?? {})) {
    for (const pod of w.pods) {
      if (pod.node !== node) continue;
      const podAvailable = cluster.nodes[node]?.ready ? 1 : 0;
      if (available(cluster, w) - podAvailable < minAvailable(w, objects)) continue; // the budget forbids it for now
      pod.node = undefined;
      pod.node = pickNode(cluster, w);
      evicted++;
    }
  }
  const remaining = Object.values(cluster.workloads ?? {}).reduce((n, w) => n + w.pods.filter((p) => p.node === node).length, 0);
  return { evicted, remaining };
}

/** A node stops posting Ready: every pod bound to it is an unplanned disruption. */
export function recordNodeDown(cluster: SchedulableCluster, node: string): void {
  for (const [name, w] of Object.entries(cluster.workloads ?? {})) {
    for (const pod of w.pods) {
      if (pod.node !== node) continue;
      cluster.disruptions ??= [];
      cluster.disruptions.push({ workload: name, pod: pod.name, node, at: new Date().toISOString() });
    }
  }
}
