import { parseDurationMs, type RolloutClusterStatus, type RolloutSpec, type RolloutStatus, resolveCount } from '@edgeplane/protocol';
import type { WindowState } from '../site/maintenance-window.js';
import { type ClusterView, convergedTo, upgradeFailure } from './cluster-view.js';
import type { PlannedEvent } from './rollout-plan.js';

export interface StepWorld {
  now: Date;
  clusters: Map<string, ClusterView>;
  /** Maintenance window state of a site (no site: always open). */
  window(site: string | undefined): WindowState;
}

/** Side effects of one step, applied by the controller in the same transaction as the new status. */
export interface StepEffects {
  /** Start the upgrade: set spec.profile.revision. */
  start: { cluster: string; revision: number }[];
  /** Ask for a stage-only download ahead of the window (PRESTAGE_ANNOTATION). */
  prestage: { cluster: string; revision: number }[];
  /** Withdraw a pre-stage request (the rollout stopped before the cluster's turn). */
  unprestage: string[];
  events: PlannedEvent[];
}

const TERMINAL = new Set(['succeeded', 'failed', 'skipped']);
const pct = (s: string) => Number(s.slice(0, -1));

/**
 * One step of a rollout, a pure function of its spec, last status and the world at `now`:
 * 1. follow upgrading clusters to succeeded/failed (contract: cluster-view.ts; per-cluster timeout);
 * 2. stop on abort or when failures exceed maxFailures (no new cluster is touched after that);
 * 3. close the current batch when all its clusters are done, checking its successThreshold, and
 *    wait for approval before the next one when the strategy asks;
 * 4. start clusters of the current batch whose site window is open, within maxParallel and every
 *    disruption budget; pre-stage those whose window opens within prestageAhead;
 * 5. when stopping, skip everything not yet started and finish once nothing is upgrading.
 */
export function stepRollout(spec: RolloutSpec, prev: RolloutStatus, world: StepWorld): { status: RolloutStatus; effects: StepEffects } {
  const st: RolloutStatus = structuredClone(prev);
  const fx: StepEffects = { start: [], prestage: [], unprestage: [], events: [] };
  const rev = spec.profile.revision;
  const nowMs = world.now.getTime();
  const nowIso = world.now.toISOString();
  const strat = spec.strategy;
  const event = (type: PlannedEvent['type'], reason: string, message: string) => fx.events.push({ type, reason, message });
  const finish = (c: RolloutClusterStatus, state: 'succeeded' | 'failed', reason: string, message: string) => {
    Object.assign(c, { state, reason, message, finishedAt: nowIso });
    const b = st.batches[c.batch];
    if (b) b[state]++;
    event(state === 'failed' ? 'Warning' : 'Normal', state === 'failed' ? 'ClusterUpgradeFailed' : 'ClusterUpgraded', `cluster ${c.name}: ${message}`);
  };

  // 1. Follow clusters already upgrading.
  for (const c of st.clusters) {
    if (c.state !== 'upgrading') continue;
    const v = world.clusters.get(c.name);
    if (!v) finish(c, 'failed', 'ClusterDeleted', 'the cluster was deleted during its upgrade');
    else if (convergedTo(v, rev)) finish(c, 'succeeded', 'Upgraded', `runs revision ${rev}`);
    else {
      const why = upgradeFailure(v, rev);
      if (why) finish(c, 'failed', 'UpgradeFailed', why);
      else if (nowMs - Date.parse(c.startedAt ?? nowIso) > parseDurationMs(strat.clusterTimeout))
        finish(c, 'failed', 'Timeout', `not converged within ${strat.clusterTimeout}`);
    }
  }

  // 2. Stop conditions.
  const eligible = st.clusters.filter((c) => c.batch >= 0).length;
  const failed = st.clusters.filter((c) => c.state === 'failed').length;
  const stop = (reason: string, message: string) => {
    if (st.stopReason) return;
    st.stopReason = reason;
    st.message = message;
    event('Warning', reason === 'Aborted' ? 'RolloutAborting' : 'RolloutStopping', message);
  };
  if (st.abortRequested) stop('Aborted', 'abort requested: no further cluster is started; clusters already upgrading finish');
  if (strat.maxFailures !== undefined && failed > resolveCount(strat.maxFailures, eligible))
    stop('FailureThresholdExceeded', `${failed} cluster(s) failed, more than maxFailures ${strat.maxFailures}`);

  // 3. Batch progression.
  let cur = st.currentBatch ?? 0;
  while (!st.stopReason && cur < st.batches.length && !(cur > 0 && strat.requireApproval && (st.approvedBatch ?? 0) < cur)) {
    const b = st.batches[cur];
    const members = st.clusters.filter((c) => c.batch === cur);
    if (!members.every((c) => TERMINAL.has(c.state))) break;
    const considered = members.filter((c) => c.state !== 'skipped').length;
    const threshold = strat.batches[cur]?.successThreshold ?? '100%';
    if (considered > 0 && (b.succeeded / considered) * 100 < pct(threshold)) {
      b.phase = 'Failed';
      stop('BatchFailed', `batch ${b.name}: ${b.succeeded}/${considered} succeeded, below its successThreshold ${threshold}`);
      break;
    }
    if (b.phase !== 'Succeeded') {
      b.phase = 'Succeeded';
      event('Normal', 'BatchSucceeded', `batch ${b.name}: ${b.succeeded}/${considered} succeeded`);
    }
    cur++;
  }
  // Each batch after the first waits for `approve` (which records approvedBatch) when asked to.
  const awaiting = !st.stopReason && cur > 0 && cur < st.batches.length && strat.requireApproval && (st.approvedBatch ?? 0) < cur;
  st.currentBatch = cur;

  // 4. Start or stage clusters of the current batch.
  const upgrading = st.clusters.filter((c) => c.state === 'upgrading');
  const groupCounts = strat.disruptionBudgets.map((budget) => {
    const m = new Map<string, number>();
    for (const c of upgrading) {
      const g = world.clusters.get(c.name)?.labels[budget.labelKey];
      if (g !== undefined) m.set(g, (m.get(g) ?? 0) + 1);
    }
    return m;
  });
  if (!st.stopReason && !st.paused && !awaiting && cur < st.batches.length) {
    st.batches[cur].phase = 'Progressing';
    let inFlight = upgrading.length;
    for (const c of st.clusters) {
      if (c.batch !== cur || TERMINAL.has(c.state) || c.state === 'upgrading') continue;
      const v = world.clusters.get(c.name);
      if (!v) {
        Object.assign(c, { state: 'skipped', reason: 'ClusterDeleted', message: 'the cluster was deleted before its turn', finishedAt: nowIso });
        continue;
      }
      const w = world.window(c.site);
      c.nextWindowAt = w.nextOpensAt?.toISOString();
      if (!w.open) {
        const soon = w.nextOpensAt !== undefined && w.nextOpensAt.getTime() - nowMs <= parseDurationMs(strat.prestageAhead);
        if (soon && c.state !== 'staging') {
          fx.prestage.push({ cluster: c.name, revision: rev });
          event('Normal', 'PrestageRequested', `cluster ${c.name}: pre-staging revision ${rev} before its window at ${c.nextWindowAt}`);
        }
        Object.assign(c, soon ? { state: 'staging', reason: 'Prestaging' } : { state: 'waiting-for-window', reason: 'WindowClosed' });
        c.message = `site ${c.site}: maintenance window opens ${c.nextWindowAt}`;
        continue;
      }
      if (strat.maxParallel !== undefined && inFlight >= strat.maxParallel) {
        Object.assign(c, { state: 'pending', reason: 'MaxParallel', message: `${inFlight} cluster(s) upgrading, maxParallel ${strat.maxParallel}` });
        continue;
      }
      const blocked = strat.disruptionBudgets.findIndex((budget, i) => {
        const g = v.labels[budget.labelKey];
        return g !== undefined && (groupCounts[i].get(g) ?? 0) >= budget.maxUnavailable;
      });
      if (blocked >= 0) {
        const budget = strat.disruptionBudgets[blocked];
        Object.assign(c, {
          state: 'pending',
          reason: 'DisruptionBudget',
          message: `${budget.labelKey}=${v.labels[budget.labelKey]} already has ${budget.maxUnavailable} cluster(s) upgrading`,
        });
        continue;
      }
      strat.disruptionBudgets.forEach((budget, i) => {
        const g = v.labels[budget.labelKey];
        if (g !== undefined) groupCounts[i].set(g, (groupCounts[i].get(g) ?? 0) + 1);
      });
      inFlight++;
      fx.start.push({ cluster: c.name, revision: rev });
      Object.assign(c, { state: 'upgrading', reason: 'Upgrading', message: `moving from revision ${c.fromRevision} to ${rev}`, startedAt: nowIso });
      event('Normal', 'ClusterUpgradeStarted', `cluster ${c.name}: upgrade to revision ${rev} started (site ${c.site ?? '-'})`);
    }
  }

  // 5. Stopping: nothing new starts; finish once nothing is upgrading.
  if (st.stopReason) {
    for (const c of st.clusters) {
      if (TERMINAL.has(c.state) || c.state === 'upgrading') continue;
      if (c.state === 'staging') fx.unprestage.push(c.name);
      Object.assign(c, { state: 'skipped', reason: st.stopReason, message: `not started: ${st.message}`, finishedAt: nowIso });
    }
    for (const b of st.batches) if (b.phase === 'Pending' || b.phase === 'Progressing') b.phase = b.failed > 0 ? 'Failed' : b.phase;
  }
  const stillUpgrading = st.clusters.some((c) => c.state === 'upgrading');
  const prevPhase = st.phase;
  if (st.stopReason) {
    st.phase = stillUpgrading ? 'Stopping' : st.stopReason === 'Aborted' ? 'Aborted' : 'Failed';
  } else if (cur >= st.batches.length) {
    st.phase = 'Succeeded';
    st.message = 'every batch succeeded';
  } else st.phase = awaiting ? 'AwaitingApproval' : st.paused ? 'Paused' : 'Progressing';
  if (st.phase !== prevPhase) {
    if (st.phase === 'Succeeded' || st.phase === 'Failed' || st.phase === 'Aborted') st.finishedAt = nowIso;
    if (st.phase === 'AwaitingApproval') st.message = `batch ${st.batches[cur - 1]?.name} done; approve to start batch ${st.batches[cur]?.name}`;
    event(st.phase === 'Failed' ? 'Warning' : 'Normal', `Rollout${st.phase}`, st.message ?? st.phase);
  }
  const counts: Record<string, number> = { total: st.clusters.length };
  for (const c of st.clusters) counts[c.state] = (counts[c.state] ?? 0) + 1;
  st.counts = counts;
  return { status: st, effects: fx };
}
