import { API_VERSION, type ClusterSpec, EdgeplaneError } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { ConnectionHub } from '../agent/connection-hub.js';
import { listHostsWithAnnotation } from '../edgehost/edgehost.repository.js';
import { edgeHosts } from '../edgehost/edgehost.service.js';
import { applianceClusters, hostMembership } from '../edgehost/host-membership.js';
import { recordEvent } from '../event/event.service.js';
import type { HostChange, RequestContext } from '../resource/context.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import type { Db, Executor } from '../store/db.js';
import { ChangeBatch } from '../watch/change-bus.js';
import { findHosts, listSteps, writeHost } from './cluster.repository.js';
import { clusters } from './cluster.service.js';
import { clusterOf } from './host-claims.js';

/**
 * Set on a host that `delete --force` took out of its cluster: once its agent reports that it left
 * (drained, its Kubernetes node and etcd member removed, reset), finishHostRemovals deletes it.
 * The value is the cluster it left.
 */
export const REMOVAL_ANNOTATION = 'edgeplane.io/removal-requested';

/** The 202 answer of `DELETE /api/v1/edgehosts/NAME?force=true`: what happens next, in order. */
export interface HostRemoval {
  apiVersion: string;
  kind: 'HostRemoval';
  host: string;
  cluster: string;
  vm?: string;
  steps: string[];
}

function refused(reason: string, message: string, details: Record<string, unknown>): EdgeplaneError {
  return new EdgeplaneError('HostRemovalRefused', message, { reason, ...details });
}

/**
 * The forced delete of a host a cluster depends on: the host leaves its cluster through the
 * cluster's own scale-in path (spec.nodes, or spec.vms for a VM node, updated with every check an
 * update gets: quorum, init node, even control planes), and is deleted once it left. Undefined when
 * no cluster depends on the host (the caller deletes it at once). Refused (HostRemovalRefused) when
 * that cannot be done safely; an appliance running VMs is always refused: its clusters go first.
 */
export async function requestHostRemoval(db: Executor, host: ResourceRow, ctx: RequestContext): Promise<HostRemoval | undefined> {
  const name = host.name;
  const m = await hostMembership(db, host);
  if (!m) return undefined;
  if (m.kind === 'appliance')
    throw refused(
      'appliance',
      `host "${name}" is the appliance of cluster(s) ${applianceClusters(m)}; delete those clusters (or remove their VMs from spec.vms) first: a forced delete does not take VMs away`,
      { host: name, clusters: m.clusters.map((c) => c.cluster) },
    );
  const cluster = await clusters.get(db, m.cluster).catch(() => undefined);
  if (!cluster) {
    // An annotation left by a cluster that no longer exists: nothing depends on the host any more.
    if (m.kind === 'node' && m.cluster !== '?') return undefined;
    throw refused('unknown-cluster', `host "${name}" is marked in use by a cluster that does not exist; release it first`, { host: name });
  }
  const spec = cluster.spec as ClusterSpec;
  const count = m.kind === 'vm' ? (spec.vms ?? []).length : spec.nodes.length;
  if (count <= 1)
    throw refused(
      'only-node',
      `host "${name}" is the only node of cluster "${m.cluster}"; delete the cluster instead (edgeplane delete cluster ${m.cluster})`,
      {
        host: name,
        cluster: m.cluster,
      },
    );
  if ((await listSteps(db, m.cluster)).get('init') === name)
    throw refused(
      'init-node',
      `host "${name}" initialized cluster "${m.cluster}" and must stay its control-plane node; delete the cluster instead, or remove the other nodes first`,
      { host: name, cluster: m.cluster },
    );
  // A VM host goes with its VM (the appliance destroys the domain); a native node must drain and reset itself.
  if (m.kind === 'node' && host.connectivity !== 'online')
    throw refused(
      'offline',
      `host "${name}" is ${host.connectivity}: its node cannot be drained or reset. Bring it back online, or remove it from spec.nodes of cluster "${m.cluster}" yourself, delete its Kubernetes node (kubectl delete node ${name}), then delete the host`,
      { host: name, cluster: m.cluster },
    );

  // The cluster's own update path: validation and guards, then the host's release (managed spec cleared).
  const next = m.kind === 'vm' ? { vms: (spec.vms ?? []).filter((v) => v.name !== m.vm) } : { nodes: spec.nodes.filter((n) => n.host !== name) };
  await clusters.patch(db, m.cluster, { spec: next }, ctx);
  await recordEvent(db, {
    involvedObject: { kind: 'Cluster', name: m.cluster },
    type: 'Normal',
    reason: 'NodeRemovalRequested',
    message: `${m.kind === 'vm' ? `VM ${m.vm} (host ${name})` : `host ${name}`} removed from the cluster by ${ctx.user} (delete --force); the host is deleted once it left`,
    source: 'server',
  });
  if (m.kind === 'vm')
    return {
      apiVersion: API_VERSION,
      kind: 'HostRemoval',
      host: name,
      cluster: m.cluster,
      vm: m.vm,
      steps: [
        `VM ${m.vm} removed from spec.vms of cluster ${m.cluster}`,
        `the virt controller deletes host ${name} and appliance ${spec.appliance} destroys the VM`,
        `cluster ${m.cluster} converges to ${count - 1} node(s)`,
      ],
    };
  const [released] = await findHosts(db, [name]);
  if (!released || clusterOf(released) !== undefined)
    throw new EdgeplaneError('Conflict', `host "${name}" changed while it was being removed; retry`, { host: name });
  const annotations = { ...JSON.parse(released.annotations), [REMOVAL_ANNOTATION]: m.cluster };
  if (!(await writeHost(db, name, Number(released.resource_version), { annotations: JSON.stringify(annotations) })))
    throw new EdgeplaneError('Conflict', `host "${name}" changed while it was being removed; retry`, { host: name });
  await recordEvent(db, {
    involvedObject: { kind: 'EdgeHost', name },
    type: 'Normal',
    reason: 'RemovalRequested',
    message: `leaving cluster ${m.cluster} (delete --force by ${ctx.user}); deleted once its node is drained and removed`,
    source: 'server',
  });
  const role = spec.nodes.find((n) => n.host === name)?.role;
  return {
    apiVersion: API_VERSION,
    kind: 'HostRemoval',
    host: name,
    cluster: m.cluster,
    steps: [
      `host ${name} removed from spec.nodes of cluster ${m.cluster}`,
      `its agent drains node ${name}, removes it from Kubernetes${role === 'control-plane' ? ' and its etcd member' : ''}, and resets it`,
      `cluster ${m.cluster} converges to ${count - 1} node(s)`,
      `host ${name} is deleted; the device may register again`,
    ],
  };
}

/** The host's agent has taken the spec without Kubernetes and its node has left (kubernetes manager idle). */
function leftCluster(h: { generation: number | string; status: string }): boolean {
  const status = JSON.parse(h.status) as { observedGeneration?: number; agent?: { managers?: { kubernetes?: { phase?: string } } } };
  const phase = status.agent?.managers?.kubernetes?.phase;
  return (status.observedGeneration ?? -1) >= Number(h.generation) && (phase === undefined || phase === 'Pending');
}

/**
 * Deletes the hosts a forced delete took out of their cluster, once each has left it. A host that a
 * cluster took again meanwhile keeps existing (the mark is dropped). Called on each cluster
 * controller pass.
 */
export async function finishHostRemovals(db: Db, hub: ConnectionHub, log: Logger): Promise<void> {
  for (const h of await listHostsWithAnnotation(db, REMOVAL_ANNOTATION)) {
    const { [REMOVAL_ANNOTATION]: from, ...rest } = JSON.parse(h.annotations) as Record<string, string>;
    if (clusterOf(h) !== undefined) {
      await writeHost(db, h.name, Number(h.resource_version), { annotations: JSON.stringify(rest) });
      continue;
    }
    if (!leftCluster(h)) continue;
    const changes = new ChangeBatch();
    // The agent's channel is closed after commit: a reconnect in between must not find the host still there.
    const notices: [string, HostChange][] = [];
    const ctx: RequestContext = {
      user: 'system:controller/cluster',
      role: 'admin',
      log: log as never,
      hosts: { hostChanged: (n, c) => notices.push([n, c]) },
      changes,
    };
    await db.transaction().execute(async (trx) => {
      await edgeHosts.delete(trx, h.name, ctx);
      await recordEvent(trx, {
        involvedObject: { kind: 'EdgeHost', name: h.name },
        type: 'Normal',
        reason: 'Deleted',
        message: `left cluster ${from} (drained, removed from Kubernetes, reset) and was deleted`,
        source: 'controller/cluster',
      });
    });
    for (const [n, c] of notices) hub.hostChanged(n, c);
    changes.publishTo(hub.changes);
    log.info({ host: h.name, cluster: from }, 'host left its cluster and was deleted');
  }
}
