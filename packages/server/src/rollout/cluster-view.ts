import type { RolloutClusterRow } from './rollout.repository.js';

/** What the rollout needs to know about one cluster, read from its row (the contract with the cluster upgrade controller). */
export interface ClusterView {
  name: string;
  /** Site labels, overridden by the cluster's own labels: disruption budgets and batch selectors read these. */
  labels: Record<string, string>;
  site?: string;
  /** The cluster's own spec.site names a Site that does not exist (a typo must not bypass windows). */
  siteMissing?: boolean;
  profile: { name: string; revision: number };
  generation: number;
  resourceVersion: number;
  annotations: Record<string, string>;
  spec: Record<string, unknown> & { profile: { name: string; revision: number } };
  status: ClusterStatusView;
}

interface ClusterStatusView {
  phase?: string;
  observedGeneration?: number;
  profileRevision?: number;
  upgrade?: { state?: string; toRevision?: number; message?: string; failedNode?: string };
  conditions?: { type: string; status: string; message?: string }[];
}

export function clusterView(
  row: RolloutClusterRow,
  siteOf: (spec: { site?: string; nodes?: { host: string }[] }) => string | undefined,
  siteLabels: (site?: string) => Record<string, string>,
  siteExists: (site: string) => boolean = () => true,
): ClusterView {
  const spec = JSON.parse(row.spec) as ClusterView['spec'] & { site?: string; nodes?: { host: string }[] };
  const site = siteOf(spec);
  return {
    name: row.name,
    labels: { ...siteLabels(site), ...(JSON.parse(row.labels) as Record<string, string>) },
    site,
    siteMissing: spec.site !== undefined && !siteExists(spec.site),
    profile: spec.profile,
    generation: Number(row.generation),
    resourceVersion: Number(row.resource_version),
    annotations: JSON.parse(row.annotations),
    spec,
    status: JSON.parse(row.status),
  };
}

/**
 * Converged to `revision` (contract with the cluster upgrade controller): spec asks for it, the controller observed this
 * generation, every node runs it, and the cluster is Running.
 */
export function convergedTo(c: ClusterView, revision: number): boolean {
  return (
    c.profile.revision === revision && c.status.phase === 'Running' && c.status.observedGeneration === c.generation && c.status.profileRevision === revision
  );
}

const UPGRADE_IN_PROGRESS = ['Staging', 'Rolling', 'Paused'];

/** Why the upgrade to `revision` failed, or undefined while it has not (yet). */
export function upgradeFailure(c: ClusterView, revision: number): string | undefined {
  if (c.profile.revision !== revision) return 'the cluster spec no longer asks for this revision (changed by someone else)';
  const u = c.status.upgrade;
  if (u && u.toRevision === revision && (u.state === 'Failed' || u.state === 'Cancelled'))
    return `upgrade ${u.state.toLowerCase()}${u.failedNode ? ` on node ${u.failedNode}` : ''}${u.message ? `: ${u.message}` : ''}`;
  if (c.status.observedGeneration !== c.generation) return undefined; // the cluster controller has not looked yet
  if (u && UPGRADE_IN_PROGRESS.includes(u.state ?? '')) return undefined;
  if (c.status.phase === 'Degraded' || c.status.phase === 'Failed') {
    const ready = c.status.conditions?.find((x) => x.type === 'Ready');
    return `cluster ${c.status.phase}${ready?.message ? `: ${ready.message}` : ''}`;
  }
  return undefined;
}
