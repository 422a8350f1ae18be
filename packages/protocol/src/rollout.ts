import { z } from 'zod';
import { Condition, Name, resourceInputSchema, resourceSchema } from './meta.js';
import { DurationString } from './site.js';
import { NonNegativeInt32, PositiveInt32 } from './text.js';

/** A count (`3`) or a percentage of the rollout's target clusters (`"25%"`). */
export const CountOrPercent = z.union([NonNegativeInt32, z.string().regex(/^(100|[1-9]?\d)%$/, 'must be a count or a percentage like "25%"')]);
export type CountOrPercent = z.infer<typeof CountOrPercent>;

/** Resolves a CountOrPercent against a total; percentages round up so "1%" of 10 is 1, never 0. */
export function resolveCount(v: CountOrPercent, total: number): number {
  if (typeof v === 'number') return v;
  return Math.ceil((total * Number(v.slice(0, -1))) / 100);
}

export const RolloutBatch = z
  .object({
    name: z.string().max(63).optional(),
    /** Only clusters matching this label selector may go into this batch (default: any). */
    selector: z.string().max(1024).optional(),
    /** How many clusters this batch takes, as a count or a percentage of all targets. */
    limit: CountOrPercent,
    /** Share of this batch's clusters that must succeed before the next batch starts. */
    successThreshold: z
      .string()
      .regex(/^(100|[1-9]?\d)%$/)
      .default('100%'),
  })
  .strict();
export type RolloutBatch = z.infer<typeof RolloutBatch>;

export const DisruptionBudget = z
  .object({
    /** Clusters are grouped by this label (cluster labels, falling back to their site's labels). */
    labelKey: z.string().min(1).max(253),
    /** At most this many clusters of one group are upgrading at the same time. */
    maxUnavailable: PositiveInt32,
  })
  .strict();

export const RolloutStrategy = z
  .object({
    /** Run in order; the first is the canary. Clusters left over after the last batch are skipped. */
    batches: z.array(RolloutBatch).min(1).max(100),
    /** Stop the whole rollout when more clusters than this have failed (count or % of targets). */
    maxFailures: CountOrPercent.optional(),
    disruptionBudgets: z.array(DisruptionBudget).max(10).default([]),
    /** At most this many clusters upgrading at once across the rollout (default: no limit). */
    maxParallel: PositiveInt32.optional(),
    /** Wait for `approve` before each batch after the first. */
    requireApproval: z.boolean().default(false),
    /** A cluster that has not converged this long after its upgrade started counts as failed. */
    clusterTimeout: DurationString.default('2h'),
    /** Pre-stage (download images) this long before a cluster's maintenance window opens. */
    prestageAhead: DurationString.default('2h'),
  })
  .strict();
export type RolloutStrategy = z.infer<typeof RolloutStrategy>;

export const RolloutSpec = z
  .object({
    targets: z
      .object({ names: z.array(Name).max(10000).optional(), selector: z.string().max(1024).optional() })
      .strict()
      .refine((t) => t.names !== undefined || t.selector !== undefined, 'give targets.names, targets.selector or both'),
    /** What the clusters move to: a revision of the cluster profile they already use. */
    profile: z.object({ name: Name, revision: PositiveInt32 }).strict(),
    strategy: RolloutStrategy,
  })
  .strict();
export type RolloutSpec = z.infer<typeof RolloutSpec>;

export const RolloutPhase = z.enum(['Pending', 'Progressing', 'AwaitingApproval', 'Paused', 'Stopping', 'Succeeded', 'Failed', 'Aborted']);
export type RolloutPhase = z.infer<typeof RolloutPhase>;

export const RolloutClusterState = z.enum(['pending', 'waiting-for-window', 'staging', 'upgrading', 'succeeded', 'failed', 'skipped']);
export type RolloutClusterState = z.infer<typeof RolloutClusterState>;

export const RolloutClusterStatus = z.object({
  name: Name,
  batch: z.number().int(),
  site: z.string().optional(),
  state: RolloutClusterState,
  fromRevision: z.number().int().optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  nextWindowAt: z.string().optional(),
});
export type RolloutClusterStatus = z.infer<typeof RolloutClusterStatus>;

export const RolloutBatchStatus = z.object({
  name: z.string(),
  phase: z.enum(['Pending', 'Progressing', 'Succeeded', 'Failed']),
  total: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  approved: z.boolean().optional(),
});
export type RolloutBatchStatus = z.infer<typeof RolloutBatchStatus>;

export const RolloutStatus = z.object({
  phase: RolloutPhase.optional(),
  message: z.string().optional(),
  currentBatch: z.number().int().optional(),
  batches: z.array(RolloutBatchStatus).default([]),
  clusters: z.array(RolloutClusterStatus).default([]),
  counts: z.record(z.string(), z.number().int()).default({}),
  /** Set by the pause/resume, abort and approve actions; the controller acts on them. */
  paused: z.boolean().optional(),
  abortRequested: z.boolean().optional(),
  /** Why the rollout stopped starting clusters: Aborted, FailureThresholdExceeded or BatchFailed. */
  stopReason: z.string().optional(),
  /** Highest batch index approved to start. */
  approvedBatch: z.number().int().optional(),
  conditions: z.array(Condition).default([]),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
});
export type RolloutStatus = z.infer<typeof RolloutStatus>;

export const Rollout = resourceSchema('Rollout', RolloutSpec, RolloutStatus);
export type Rollout = z.infer<typeof Rollout>;
export const RolloutInput = resourceInputSchema('Rollout', RolloutSpec);

/** Phases after which a rollout never acts again. */
export const ROLLOUT_DONE: readonly RolloutPhase[] = ['Succeeded', 'Failed', 'Aborted'];
/** Annotation on a cluster: the profile revision a rollout asks it to pre-stage (download only). */
export const PRESTAGE_ANNOTATION = 'edgeplane.io/prestage-revision';
