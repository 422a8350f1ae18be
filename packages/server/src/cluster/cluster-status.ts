import {
  type ClusterNodeStatus,
  type ClusterSpec,
  type Condition,
  kubernetesVersionCore,
  type ManagerError,
  type ManagersStatus,
  osCommittedOn,
} from '@edgeplane/protocol';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import type { HostRow } from './cluster.repository.js';
import { desiredOsAttempt } from './render.js';

export interface StatusInput {
  row: { generation: number };
  spec: ClusterSpec;
  hosts: Map<string, HostRow>;
  steps: Map<string, string | null>;
  prev: Record<string, unknown>;
  profile?: PinnedProfileSpec;
  profileMissing?: boolean;
  controlPlaneEndpoint?: string;
  /** Where the endpoint came from: spec.controlPlaneEndpoint, or the init node's address and interface. */
  controlPlaneEndpointFrom?: string;
  kubeconfigAvailable?: boolean;
  /** Why the control plane is not initialized yet, when the controller waits for something. */
  initWaiting?: string;
}

function managersOf(host: HostRow | undefined): ManagersStatus {
  return (JSON.parse(host?.status ?? '{}') as { agent?: { managers?: ManagersStatus } }).agent?.managers ?? {};
}

/** The first problem a node's managers report, as "<manager>: <why>". */
// A node still booted on another image is not an error by itself (its os manager may not have
// started the update yet): it only keeps the node from counting as Ready.
function nodeProblem(m: ManagersStatus, host: HostRow | undefined): string | undefined {
  const err = (name: string, e: ManagerError | undefined, message?: string) =>
    e ? `${name}: ${e.message}` : message ? `${name}: ${message}` : `${name} failed`;
  if ((m.os?.error || m.os?.phase === 'Failed' || m.os?.phase === 'FellBack') && !staleFallback(m, host)) return err('os', m.os?.error, m.os?.message);
  if (m.kubernetes?.error || m.kubernetes?.phase === 'Failed') return err('kubernetes', m.kubernetes.error, m.kubernetes.message);
  if (m.addons?.error || m.addons?.phase === 'Failed') return err('addons', m.addons.error, m.addons.message);
  return undefined;
}

/**
 * A fallback the agent reports that is not about the attempt the host is asked to make now: the
 * host fell back from this image for an earlier cluster or before an operator's retry, and its
 * agent has not answered the new attempt yet (it will try the image again). Agents that report no
 * failedImages (older ones) are taken at their word.
 */
function staleFallback(m: ManagersStatus, host: HostRow | undefined): boolean {
  const os = m.os;
  if (!os?.failedImages || !host) return false;
  if (os.phase !== 'FellBack' && os.error?.phase !== 'health') return false;
  const want = desiredOsAttempt(host);
  return !!want && !os.failedImages.some((f) => f.digest === want.digest && f.attempt === want.attempt);
}

/** Ready in the status before this one (or already counted NotReady after having been Ready). */
function wasReady(prev: Record<string, unknown>, host: string): boolean {
  const n = ((prev.nodes as ClusterNodeStatus[] | undefined) ?? []).find((x) => x.host === host);
  return !!n && (n.ready || n.phase === 'NotReady');
}

function condition(prev: Record<string, unknown>, c: Omit<Condition, 'lastTransitionTime'>): Condition {
  const old = ((prev.conditions as Condition[] | undefined) ?? []).find((x) => x.type === c.type);
  const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : new Date().toISOString();
  return { ...c, lastTransitionTime };
}

/**
 * Cluster status derived from what the agents report: Running when every node is Ready at the
 * expected version on the pinned OS image; Failed (before it ever ran) or Degraded (after) when a
 * node's manager reports an error or a node that was Ready is not; Scaling while nodes added to a
 * running cluster join; Provisioning otherwise.
 */
export function clusterStatus(s: StatusInput): Record<string, unknown> {
  const digest = s.profile?.layers.os?.digest;
  // A profile without an os layer (agent mode): the hosts keep their own OS, there is no image to be on.
  // Otherwise a node counts on the image once it is committed there: during its trial boot it runs
  // the image but can still fall back, so a cluster whose last node is on trial is not Running yet.
  const imageOk = (m: ManagersStatus) => (s.profile && !s.profile.layers.os ? true : osCommittedOn(m.os, digest));
  const version = s.profile?.layers.kubernetes?.version;
  const hasRun = s.steps.has('running');
  const joined = new Set([...s.steps.entries()].filter(([k]) => k === 'init' || k.startsWith('join:')).map(([, h]) => h));
  const nodes: ClusterNodeStatus[] = s.spec.nodes.map((n) => {
    const m = managersOf(s.hosts.get(n.host));
    const problem = nodeProblem(m, s.hosts.get(n.host));
    const k = m.kubernetes;
    const versionOk = !!k?.version && !!version && kubernetesVersionCore(k.version) === kubernetesVersionCore(version);
    const ready = !problem && k?.ready === true && k.phase === 'Ready' && versionOk && imageOk(m);
    const phase: ClusterNodeStatus['phase'] = problem
      ? 'Failed'
      : ready
        ? 'Ready'
        : !joined.has(n.host)
          ? 'Pending'
          : hasRun && (k?.phase === 'NotReady' || wasReady(s.prev, n.host))
            ? 'NotReady'
            : 'Provisioning';
    const message =
      problem ??
      (k?.ready && !versionOk ? `kubernetes ${k.version ?? '?'} is not ${version}` : undefined) ??
      (k?.ready && m.os?.digest !== digest ? `os image ${m.os?.digest ?? 'unknown'} is not the pinned ${digest}` : undefined) ??
      (k?.ready && !imageOk(m) ? `os image ${digest} is on trial in slot ${m.os?.bootedSlot}, not committed yet` : undefined) ??
      k?.message ??
      (staleFallback(m, s.hosts.get(n.host)) ? undefined : m.os?.message);
    return {
      host: n.host,
      role: n.role,
      phase,
      ...(m.os?.digest ? { osImageDigest: m.os.digest } : {}),
      ...(m.os?.bootedSlot ? { bootedSlot: m.os.bootedSlot } : {}),
      ...(k?.version ? { kubernetesVersion: k.version } : {}),
      ready,
      ...(message ? { message } : {}),
    };
  });
  const failed = nodes.filter((n) => n.phase === 'Failed');
  const allReady = nodes.every((n) => n.ready);
  let phase: string;
  let ready: Omit<Condition, 'lastTransitionTime'>;
  if (s.profileMissing) {
    phase = 'Failed';
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'ProfileRevisionMissing',
      message: `profile ${s.spec.profile.name} revision ${s.spec.profile.revision} is gone`,
    };
  } else if (failed.length) {
    phase = hasRun ? 'Degraded' : 'Failed';
    ready = { type: 'Ready', status: 'False', reason: 'NodeFailed', message: failed.map((n) => `${n.host}: ${n.message}`).join('; ') };
  } else if (allReady) {
    phase = 'Running';
    ready = { type: 'Ready', status: 'True', reason: 'AllNodesReady', message: `${nodes.length} node(s) Ready` };
  } else {
    const waiting = nodes.filter((n) => !n.ready);
    // Nodes added to a running cluster that were never Ready in it are joining: a planned step
    // (Scaling), not trouble. Degraded is for a node that was Ready and is not any more.
    const joining = hasRun && waiting.every((n) => !wasReady(s.prev, n.host));
    phase = !hasRun ? 'Provisioning' : joining ? 'Scaling' : 'Degraded';
    const reason = !hasRun ? 'Provisioning' : joining ? 'NodesJoining' : 'NodesNotReady';
    ready = { type: 'Ready', status: 'False', reason, message: `waiting for ${waiting.map((n) => n.host).join(', ')}` };
  }
  const conditions = [
    condition(s.prev, ready),
    condition(s.prev, {
      type: 'ControlPlaneInitialized',
      status: s.steps.has('init') ? 'True' : 'False',
      reason: s.steps.has('init') ? 'Initialized' : 'Pending',
      ...(s.steps.get('init') ? { message: `initialized on ${s.steps.get('init')}` } : s.initWaiting ? { message: s.initWaiting } : {}),
    }),
  ];
  return {
    phase,
    conditions,
    nodes,
    observedGeneration: Number(s.row.generation),
    ...(s.controlPlaneEndpoint ? { controlPlaneEndpoint: s.controlPlaneEndpoint } : {}),
    ...(s.controlPlaneEndpointFrom ? { controlPlaneEndpointFrom: s.controlPlaneEndpointFrom } : {}),
    kubeconfigAvailable: !!s.kubeconfigAvailable,
  };
}
