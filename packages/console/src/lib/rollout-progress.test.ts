import type { RolloutClusterStatus, RolloutSpec, RolloutStatus } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';
import { batchViews, failureLimit } from './rollout-progress';

const spec = {
  strategy: {
    batches: [
      { name: 'canary', limit: 1, successThreshold: '100%' },
      { name: 'rest', limit: '100%', successThreshold: '75%' },
    ],
    maxFailures: '25%',
  },
} as unknown as Pick<RolloutSpec, 'strategy'>;
const T = (s: number) => new Date(Date.UTC(2026, 11, 6, 12, 0, s)).toISOString();
const cluster = (name: string, batch: number, state: RolloutClusterStatus['state'], extra: Partial<RolloutClusterStatus> = {}): RolloutClusterStatus => ({
  name,
  batch,
  state,
  ...extra,
});
const status = (over: Partial<RolloutStatus>): Partial<RolloutStatus> => ({
  phase: 'Progressing',
  startedAt: T(0),
  currentBatch: 0,
  batches: [
    { name: 'canary', phase: 'Pending', total: 1, succeeded: 0, failed: 0 },
    { name: 'rest', phase: 'Pending', total: 3, succeeded: 0, failed: 0 },
  ],
  ...over,
});

describe('batchViews', () => {
  it('reads a running canary with the rest queued, times from the clusters', () => {
    const s = status({
      batches: [
        { name: 'canary', phase: 'Progressing', total: 1, succeeded: 0, failed: 0 },
        { name: 'rest', phase: 'Pending', total: 3, succeeded: 0, failed: 0 },
      ],
      clusters: [cluster('a', 0, 'upgrading', { startedAt: T(2) }), cluster('b', 1, 'pending'), cluster('c', 1, 'pending'), cluster('d', 1, 'pending')],
    });
    const [canary, rest] = batchViews(spec, s);
    expect(canary).toMatchObject({ state: 'running', turnAt: Date.parse(T(0)), startedAt: Date.parse(T(2)), threshold: 100 });
    expect(canary.finishedAt).toBeUndefined();
    expect(rest).toMatchObject({ state: 'queued', threshold: 75 });
    expect(rest.turnAt).toBeUndefined();
  });

  it('reads a done canary and the next batch waiting for approval since it ended', () => {
    const s = status({
      phase: 'AwaitingApproval',
      currentBatch: 1,
      batches: [
        { name: 'canary', phase: 'Succeeded', total: 1, succeeded: 1, failed: 0 },
        { name: 'rest', phase: 'Pending', total: 3, succeeded: 0, failed: 0 },
      ],
      clusters: [cluster('a', 0, 'succeeded', { startedAt: T(2), finishedAt: T(9) }), cluster('b', 1, 'pending')],
    });
    const [canary, rest] = batchViews(spec, s);
    expect(canary).toMatchObject({ state: 'done', startedAt: Date.parse(T(2)), finishedAt: Date.parse(T(9)) });
    expect(rest).toMatchObject({ state: 'waiting-for-approval', turnAt: Date.parse(T(9)) });
  });

  it('reads a batch whose clusters wait for their window, with the earliest window', () => {
    const s = status({
      batches: [
        { name: 'canary', phase: 'Progressing', total: 1, succeeded: 0, failed: 0 },
        { name: 'rest', phase: 'Pending', total: 0, succeeded: 0, failed: 0 },
      ],
      clusters: [cluster('a', 0, 'waiting-for-window', { nextWindowAt: T(50) }), cluster('x', 0, 'staging', { nextWindowAt: T(40) })],
    });
    expect(batchViews(spec, s)[0]).toMatchObject({ state: 'waiting-for-window', windowAt: Date.parse(T(40)) });
    expect(batchViews(spec, { ...s, phase: 'Paused' })[0].state).toBe('paused');
  });

  it('reads a failed batch, skips the batches after it, and leaves skipped clusters out of the threshold', () => {
    const s = status({
      phase: 'Failed',
      stopReason: 'BatchFailed',
      batches: [
        { name: 'canary', phase: 'Failed', total: 3, succeeded: 1, failed: 1 },
        { name: 'rest', phase: 'Pending', total: 1, succeeded: 0, failed: 0 },
      ],
      clusters: [
        cluster('a', 0, 'succeeded', { startedAt: T(1), finishedAt: T(5) }),
        cluster('b', 0, 'failed', { startedAt: T(2), finishedAt: T(8) }),
        cluster('c', 0, 'skipped', { finishedAt: T(9) }),
        cluster('d', 1, 'skipped'),
        cluster('z', -1, 'skipped'),
      ],
    });
    const [canary, rest] = batchViews(spec, s);
    // The skipped cluster's finish is not the batch's end: it never started.
    expect(canary).toMatchObject({ state: 'failed', considered: 2, startedAt: Date.parse(T(1)), finishedAt: Date.parse(T(8)) });
    expect(rest.state).toBe('skipped');
    // 25% of the 4 clusters in a batch, rounded up.
    expect(failureLimit(spec, s)).toBe(1);
    expect(failureLimit({ strategy: { ...spec.strategy, maxFailures: undefined } } as never, s)).toBeUndefined();
  });

  it('reads an aborted rollout whose current batch had no failure as stopped', () => {
    const s = status({
      phase: 'Aborted',
      stopReason: 'Aborted',
      batches: [
        { name: 'canary', phase: 'Progressing', total: 1, succeeded: 1, failed: 0 },
        { name: 'rest', phase: 'Pending', total: 0, succeeded: 0, failed: 0 },
      ],
      clusters: [cluster('a', 0, 'succeeded', { startedAt: T(1), finishedAt: T(4) })],
    });
    expect(batchViews(spec, s).map((b) => b.state)).toEqual(['stopped', 'skipped']);
  });
});
