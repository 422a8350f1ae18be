import { ROLLOUT_DONE, type RolloutSpec, type RolloutStatus, resolveCount } from '@edgeplane/protocol';

/** How a batch reads on the timeline (the API's batch phase refined by its clusters' states). */
export type BatchState = 'done' | 'running' | 'waiting-for-window' | 'waiting-for-approval' | 'paused' | 'failed' | 'stopped' | 'queued' | 'skipped';

export const BATCH_STATE_LABEL: Record<BatchState, string> = {
  done: 'done',
  running: 'running',
  'waiting-for-window': 'waiting for window',
  'waiting-for-approval': 'waiting for approval',
  paused: 'paused',
  failed: 'failed',
  stopped: 'stopped',
  queued: 'queued',
  skipped: 'not started',
};

export interface BatchView {
  index: number;
  name: string;
  state: BatchState;
  total: number;
  succeeded: number;
  failed: number;
  /** Clusters that count for the success threshold (skipped ones do not). */
  considered: number;
  /** successThreshold of the batch, in percent. */
  threshold: number;
  /** When the batch's turn came: the rollout's start for the first, the previous batch's end after. */
  turnAt?: number;
  /** First cluster started / last cluster finished. */
  startedAt?: number;
  finishedAt?: number;
  /** Earliest next maintenance window of a cluster still waiting for one. */
  windowAt?: number;
}

const ms = (iso: string | undefined) => (iso ? Date.parse(iso) : undefined);
const min = (xs: (number | undefined)[]) => xs.reduce<number | undefined>((a, b) => (b === undefined ? a : a === undefined ? b : Math.min(a, b)), undefined);
const max = (xs: (number | undefined)[]) => xs.reduce<number | undefined>((a, b) => (b === undefined ? a : a === undefined ? b : Math.max(a, b)), undefined);

/**
 * The batches of a rollout as the timeline shows them, derived from the status the rollout controller
 * writes (batch phases and counts, every cluster's state and start/finish times) and the spec's
 * thresholds. Pure: the same status always reads the same.
 */
export function batchViews(spec: Pick<RolloutSpec, 'strategy'>, s: Partial<RolloutStatus>): BatchView[] {
  const phase = s.phase ?? 'Pending';
  const over = ROLLOUT_DONE.includes(phase) || !!s.stopReason;
  // One pass over the clusters (a rollout may hold thousands), grouped by batch.
  const byBatch = new Map<number, NonNullable<RolloutStatus['clusters']>>();
  for (const c of s.clusters ?? []) {
    const list = byBatch.get(c.batch);
    if (list) list.push(c);
    else byBatch.set(c.batch, [c]);
  }
  let turnAt = ms(s.startedAt);
  return (s.batches ?? []).map((b, index) => {
    const members = byBatch.get(index) ?? [];
    const startedAt = min(members.map((c) => ms(c.startedAt)));
    const finishedAt = max(members.map((c) => (c.startedAt ? ms(c.finishedAt) : undefined)));
    const waitingForWindow = members.filter((c) => c.state === 'waiting-for-window' || c.state === 'staging');
    const upgrading = members.some((c) => c.state === 'upgrading');
    let state: BatchState;
    if (b.phase === 'Succeeded') state = 'done';
    else if (b.phase === 'Failed') state = 'failed';
    else if (b.phase === 'Progressing') {
      if (upgrading) state = 'running';
      else if (over) state = 'stopped';
      else if (phase === 'Paused') state = 'paused';
      else if (waitingForWindow.length > 0) state = 'waiting-for-window';
      else state = 'running';
    } else if (index === (s.currentBatch ?? 0) && phase === 'AwaitingApproval') state = 'waiting-for-approval';
    else state = over ? 'skipped' : 'queued';
    const view: BatchView = {
      index,
      name: b.name,
      state,
      total: b.total,
      succeeded: b.succeeded,
      failed: b.failed,
      considered: members.filter((c) => c.state !== 'skipped').length,
      threshold: Number((spec.strategy.batches[index]?.successThreshold ?? '100%').slice(0, -1)),
      ...(turnAt !== undefined && state !== 'queued' && state !== 'skipped' ? { turnAt } : {}),
      ...(startedAt !== undefined ? { startedAt } : {}),
      ...(finishedAt !== undefined && (state === 'done' || state === 'failed' || state === 'stopped') ? { finishedAt } : {}),
      ...(state === 'waiting-for-window' ? { windowAt: min(waitingForWindow.map((c) => ms(c.nextWindowAt))) } : {}),
    };
    turnAt = view.finishedAt;
    return view;
  });
}

/** The rollout-wide error threshold: how many failed clusters stop it (undefined: no limit). */
export function failureLimit(spec: Pick<RolloutSpec, 'strategy'>, s: Partial<RolloutStatus>): number | undefined {
  const eligible = (s.clusters ?? []).filter((c) => c.batch >= 0).length;
  return spec.strategy.maxFailures === undefined ? undefined : resolveCount(spec.strategy.maxFailures, eligible);
}
