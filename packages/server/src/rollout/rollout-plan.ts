import { type RolloutClusterStatus, type RolloutSpec, type RolloutStatus, resolveCount } from '@edgeplane/protocol';
import { matchesSelector, parseLabelSelector } from '../resource/label-selector.js';
import { type ClusterView, convergedTo } from './cluster-view.js';

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/**
 * Resolves targets and freezes batch membership, once, when a rollout starts. A cluster another
 * unfinished rollout still holds (`heldBy`) is skipped with the holder's name, never taken twice.
 * Batches take clusters in name order; a percentage limit is of all eligible targets (rounded up),
 * and clusters left after the last batch are skipped as NotInAnyBatch.
 */
export function planRollout(spec: RolloutSpec, clusters: Map<string, ClusterView>, heldBy: Map<string, string>, nowIso: string): RolloutStatus {
  const selector = spec.targets.selector !== undefined ? parseLabelSelector(spec.targets.selector) : undefined;
  const names = new Set(spec.targets.names ?? []);
  const out: RolloutClusterStatus[] = [];
  const skip = (name: string, reason: string, message: string, c?: ClusterView) =>
    out.push({ name, batch: -1, site: c?.site, state: 'skipped', reason, message, fromRevision: c?.profile.revision });
  for (const n of [...names].sort()) if (!clusters.has(n)) skip(n, 'NotFound', `cluster ${n} does not exist`);
  const eligible: ClusterView[] = [];
  for (const c of [...clusters.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!names.has(c.name) && !(selector && matchesSelector(c.labels, selector))) continue;
    const holder = heldBy.get(c.name);
    if (holder) skip(c.name, 'InAnotherRollout', `cluster ${c.name} is already in rollout ${holder}`, c);
    else if (c.siteMissing)
      skip(c.name, 'SiteNotFound', `cluster ${c.name} names site ${c.site}, which does not exist: its maintenance windows are unknown`, c);
    else if (c.profile.name !== spec.profile.name)
      skip(c.name, 'ProfileMismatch', `cluster ${c.name} uses profile ${c.profile.name}, not ${spec.profile.name}`, c);
    else if (convergedTo(c, spec.profile.revision)) skip(c.name, 'AlreadyAtRevision', `cluster ${c.name} already runs revision ${spec.profile.revision}`, c);
    else eligible.push(c);
  }
  const assigned = new Set<string>();
  const batches = spec.strategy.batches.map((b, i) => {
    const sel = b.selector !== undefined ? parseLabelSelector(b.selector) : undefined;
    const want = resolveCount(b.limit, eligible.length);
    let total = 0;
    for (const c of eligible) {
      if (total >= want) break;
      if (assigned.has(c.name) || (sel && !matchesSelector(c.labels, sel))) continue;
      assigned.add(c.name);
      out.push({ name: c.name, batch: i, site: c.site, state: 'pending', fromRevision: c.profile.revision });
      total++;
    }
    return { name: b.name ?? (i === 0 ? 'canary' : `batch-${i}`), phase: 'Pending' as const, total, succeeded: 0, failed: 0 };
  });
  for (const c of eligible)
    if (!assigned.has(c.name)) skip(c.name, 'NotInAnyBatch', `cluster ${c.name} matched no batch (make the last batch's limit "100%")`, c);
  return {
    phase: 'Progressing',
    currentBatch: 0,
    batches,
    clusters: out.sort((a, b) => a.batch - b.batch || a.name.localeCompare(b.name)),
    counts: {},
    conditions: [],
    startedAt: nowIso,
  };
}
