import { EdgeplaneError, findKind, ROLLOUT_DONE, type RolloutPhase, type RolloutSpec, type RolloutStatus } from '@edgeplane/protocol';
import { requireKubernetes } from '../cluster/render.js';
import { findRevision } from '../cluster-profile/cluster-profile.repository.js';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { recordEvent } from '../event/event.service.js';
import type { RequestContext } from '../resource/context.js';
import { parseLabelSelector } from '../resource/label-selector.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import { ResourceService } from '../resource/resource.service.js';
import type { Executor } from '../store/db.js';
import { writeRolloutStatus } from './rollout.repository.js';

async function validate(db: Executor, spec: RolloutSpec): Promise<void> {
  const rev = await findRevision(db, spec.profile.name, spec.profile.revision);
  if (!rev)
    throw new EdgeplaneError('ProfileRevisionNotFound', `cluster profile "${spec.profile.name}" has no revision ${spec.profile.revision}`, {
      profile: spec.profile.name,
      revision: spec.profile.revision,
    });
  requireKubernetes((JSON.parse(rev.spec) as PinnedProfileSpec).layers.kubernetes, spec.profile.name, spec.profile.revision);
  // Selectors are parsed now so a typo fails the request instead of the rollout.
  if (spec.targets.selector !== undefined) parseLabelSelector(spec.targets.selector);
  for (const b of spec.strategy.batches) if (b.selector !== undefined) parseLabelSelector(b.selector);
}

/** An action changes only control fields of the status; the controller acts on them on its next pass. */
function control(
  allowed: RolloutPhase[] | 'unfinished',
  change: (s: RolloutStatus) => Partial<RolloutStatus>,
  describe: (s: RolloutStatus) => string,
): (db: Executor, row: ResourceRow, ctx: RequestContext) => Promise<void> {
  return async (db, row, ctx) => {
    const status = JSON.parse(row.status) as RolloutStatus;
    const phase = status.phase ?? 'Pending';
    const ok = allowed === 'unfinished' ? !ROLLOUT_DONE.includes(phase) : allowed.includes(phase);
    if (!ok) throw new EdgeplaneError('InvalidState', `rollout "${row.name}" is ${phase}`, { phase });
    // Approving twice before the controller acted on the first approval would skip a batch's gate.
    if (allowed !== 'unfinished' && allowed.includes('AwaitingApproval') && (status.approvedBatch ?? 0) >= (status.currentBatch ?? 0))
      throw new EdgeplaneError('InvalidState', `batch ${status.currentBatch} of rollout "${row.name}" is already approved`, { phase });
    const next = { ...status, ...change(status) };
    if (!(await writeRolloutStatus(db, row.name, Number(row.resource_version), next)))
      throw new EdgeplaneError('Conflict', `rollout "${row.name}" was modified concurrently; retry`);
    await recordEvent(db, {
      involvedObject: { kind: 'Rollout', name: row.name },
      type: 'Normal',
      reason: 'RolloutAction',
      message: `${describe(status)} by ${ctx.user}`,
      source: 'server',
    });
  };
}

export const rollouts = new ResourceService(findKind('Rollout')!, 'rollouts', {
  async prepareCreate(db, input) {
    await validate(db, input.spec as RolloutSpec);
    return { columns: { phase: 'Pending' }, status: { phase: 'Pending', batches: [], clusters: [], counts: {}, conditions: [] } };
  },
  async prepareUpdate() {
    // Batches are frozen when a rollout starts; changing the plan midway would break its guarantees.
    throw new EdgeplaneError('InvalidState', 'a rollout spec cannot change; abort it and create a new rollout');
  },
  actions: {
    pause: control(
      'unfinished',
      () => ({ paused: true }),
      () => 'paused',
    ),
    resume: control(
      'unfinished',
      () => ({ paused: false }),
      () => 'resumed',
    ),
    abort: control(
      'unfinished',
      () => ({ abortRequested: true }),
      () => 'abort requested',
    ),
    approve: control(
      ['AwaitingApproval'],
      (s) => ({ approvedBatch: s.currentBatch, batches: s.batches.map((b, i) => (i === s.currentBatch ? { ...b, approved: true } : b)) }),
      (s) => `batch ${s.batches[s.currentBatch ?? 0]?.name} approved`,
    ),
  },
});
