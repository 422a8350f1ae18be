import { type ClusterSpec, EdgeplaneError, PRESTAGE_ANNOTATION, type RolloutSpec, type RolloutStatus, type SiteSpec } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { checkRevisionChange } from '../cluster/cluster.service.js';
import { findRevision } from '../cluster-profile/cluster-profile.repository.js';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { Controller } from '../controller/controller-loop.js';
import { recordEvent } from '../event/event.service.js';
import { type WindowState, windowState } from '../site/maintenance-window.js';
import type { Db } from '../store/db.js';
import { type ClusterView, clusterView } from './cluster-view.js';
import { hostSites, listClusters, listSites, listUnfinishedRollouts, type RolloutRow, writeClusterSpec, writeRolloutStatus } from './rollout.repository.js';
import { planRollout } from './rollout-plan.js';
import { stepRollout } from './rollout-step.js';

/** Where the rollout controller reads the time; tests pass a clock they move by hand. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

export interface RolloutControllerOptions {
  clock?: Clock;
  intervalMs?: number;
  /** Called after a pass changed clusters' specs (the cluster controller reconciles at once). */
  onClustersChanged?: () => void;
}

/**
 * Drives Rollouts (rollout-step.ts decides; this class reads the world and persists). Every step
 * writes the rollout's status together with the cluster spec changes it implies in one
 * transaction, guarded by the rollout's resourceVersion: an action (pause, abort, approve) landing
 * in between makes the pass retry, and a restarted server resumes from the stored status.
 */
export class RolloutController extends Controller {
  readonly clock: Clock;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly opts: RolloutControllerOptions = {},
  ) {
    super();
    this.clock = opts.clock ?? systemClock;
  }

  protected loopSettings() {
    return { name: 'rollout controller', log: this.log, intervalMs: this.opts.intervalMs ?? 1000 };
  }

  /** One pass over every unfinished rollout, in creation order; returns how many steps were written. */
  async pass(): Promise<number> {
    const rollouts = await listUnfinishedRollouts(this.db);
    if (rollouts.length === 0) return 0;
    const now = this.clock.now();
    const world = await this.readWorld(now);
    // Held clusters come from every unfinished rollout's stored status first, so a rollout whose step
    // fails this pass still holds its clusters against a newer one planning now.
    for (const row of rollouts) {
      for (const c of (JSON.parse(row.status) as RolloutStatus).clusters ?? [])
        if (c.state !== 'succeeded' && c.state !== 'failed' && c.state !== 'skipped') world.heldBy.set(c.name, row.name);
    }
    let written = 0;
    let clustersChanged = false;
    for (const row of rollouts) {
      try {
        const r = await this.stepOne(row, world);
        if (r.written) written++;
        clustersChanged ||= r.clustersChanged;
      } catch (err) {
        this.log.warn({ err, rollout: row.name }, 'rollout step failed; retrying on the next pass');
      }
    }
    if (clustersChanged) this.opts.onClustersChanged?.();
    return written;
  }

  private async readWorld(now: Date) {
    const siteRows = await listSites(this.db);
    const sites = new Map(siteRows.map((s) => [s.name, { spec: JSON.parse(s.spec) as SiteSpec, labels: JSON.parse(s.labels) as Record<string, string> }]));
    const rows = await listClusters(this.db);
    const firstHosts = rows
      .map((r) => (JSON.parse(r.spec) as { site?: string; nodes?: { host: string }[] }).nodes?.[0]?.host)
      .filter((h): h is string => h !== undefined);
    const byHost = await hostSites(this.db, firstHosts);
    const siteOf = (spec: { site?: string; nodes?: { host: string }[] }) => spec.site ?? (spec.nodes?.[0] ? byHost.get(spec.nodes[0].host) : undefined);
    const clusters = new Map<string, ClusterView>(
      rows.map((r) => [
        r.name,
        clusterView(
          r,
          siteOf,
          (s) => (s ? (sites.get(s)?.labels ?? {}) : {}),
          (s) => sites.has(s),
        ),
      ]),
    );
    // Windows are computed once per site per pass: thousands of clusters share few sites' schedules.
    const windows = new Map<string, WindowState>();
    const window = (site: string | undefined): WindowState => {
      const s = site ? sites.get(site) : undefined;
      if (!site || !s) return { open: true };
      let w = windows.get(site);
      if (!w) {
        w = windowState(s.spec.timezone, s.spec.maintenanceWindows, now);
        windows.set(site, w);
      }
      return w;
    };
    // Clusters held by an unfinished rollout (its not-yet-terminal clusters): filled as rollouts are read.
    return { now, clusters, window, heldBy: new Map<string, string>() };
  }

  /** Why moving `cluster` to `revision` would be refused like an update (code: message), or undefined. */
  private async refusal(cluster: ClusterView, revision: number): Promise<string | undefined> {
    const current = cluster.spec as unknown as ClusterSpec;
    const next = { ...current, profile: { ...current.profile, revision } };
    const rev = await findRevision(this.db, next.profile.name, revision);
    if (!rev) return `ProfileRevisionNotFound: cluster profile "${next.profile.name}" has no revision ${revision}`;
    try {
      await checkRevisionChange(this.db, current, next, JSON.parse(rev.spec) as PinnedProfileSpec);
      return undefined;
    } catch (err) {
      if (err instanceof EdgeplaneError) return `${err.code}: ${err.message}`;
      throw err;
    }
  }

  private async stepOne(row: RolloutRow, world: Awaited<ReturnType<RolloutController['readWorld']>>) {
    const spec = JSON.parse(row.spec) as RolloutSpec;
    let status = JSON.parse(row.status) as RolloutStatus;
    const events: { type: 'Normal' | 'Warning'; reason: string; message: string }[] = [];
    if (!status.clusters?.length && (status.phase === undefined || status.phase === 'Pending')) {
      const { paused, abortRequested, approvedBatch } = status;
      status = { ...planRollout(spec, world.clusters, world.heldBy, world.now.toISOString()), paused, abortRequested, approvedBatch };
      const eligible = status.clusters.filter((c) => c.batch >= 0).length;
      events.push({
        type: 'Normal',
        reason: 'RolloutPlanned',
        message: `${eligible} cluster(s) in ${status.batches.length} batch(es) (${status.batches.map((b) => b.total).join('/')}), ${status.clusters.length - eligible} skipped`,
      });
      for (const c of status.clusters) if (c.state === 'skipped') events.push({ type: 'Normal', reason: 'ClusterSkipped', message: c.message ?? c.name });
    }
    const { status: next, effects } = stepRollout(spec, status, world);
    events.push(...effects.events);
    // A rollout changes a cluster's revision as an update would: a move the API refuses (a Kubernetes
    // version the cluster's OS image does not carry) fails that cluster at once, with the reason,
    // instead of leaving it upgrading towards a version its nodes can never report.
    for (const s of [...effects.start]) {
      const refusal = await this.refusal(world.clusters.get(s.cluster)!, s.revision);
      if (!refusal) continue;
      effects.start.splice(effects.start.indexOf(s), 1);
      const entry = next.clusters.find((c) => c.name === s.cluster)!;
      Object.assign(entry, { state: 'failed', reason: 'UpgradeRefused', message: refusal, finishedAt: world.now.toISOString() });
      const batch = next.batches[entry.batch];
      if (batch) batch.failed++;
      events.push({ type: 'Warning', reason: 'ClusterUpgradeFailed', message: `cluster ${s.cluster}: ${refusal}` });
    }
    for (const c of next.clusters) if (c.state !== 'succeeded' && c.state !== 'failed' && c.state !== 'skipped') world.heldBy.set(c.name, row.name);
    if (JSON.stringify(next) === row.status && events.length === 0) return { written: false, clustersChanged: false };

    const touched = new Set([...effects.start.map((s) => s.cluster), ...effects.prestage.map((s) => s.cluster), ...effects.unprestage]);
    const ts = world.now.toISOString();
    await this.db.transaction().execute(async (trx) => {
      for (const name of touched) {
        const c = world.clusters.get(name)!;
        const start = effects.start.find((s) => s.cluster === name);
        const stage = effects.prestage.find((s) => s.cluster === name);
        const annotations = { ...c.annotations };
        if (stage) annotations[PRESTAGE_ANNOTATION] = String(stage.revision);
        else delete annotations[PRESTAGE_ANNOTATION];
        const values: { spec?: string; annotations: string } = { annotations: JSON.stringify(annotations) };
        if (start) values.spec = JSON.stringify({ ...c.spec, profile: { ...c.spec.profile, revision: start.revision } });
        // Someone else changed the cluster since it was read: roll the whole step back, retry next pass.
        if (!(await writeClusterSpec(trx, name, c.resourceVersion, values))) throw new Error(`cluster ${name} changed concurrently`);
      }
      for (const e of events)
        await recordEvent(trx, { involvedObject: { kind: 'Rollout', name: row.name }, ...e, source: 'controller/rollout', timestamp: ts });
      if (!(await writeRolloutStatus(trx, row.name, Number(row.resource_version), next))) throw new Error(`rollout ${row.name} changed concurrently`);
    });
    if (effects.start.length) this.log.info({ rollout: row.name, started: effects.start.length, phase: next.phase }, 'rollout step');
    return { written: true, clustersChanged: touched.size > 0 };
  }
}
