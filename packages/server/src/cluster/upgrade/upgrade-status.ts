import type { ClusterSpec, Condition } from '@edgeplane/protocol';
import { ACTIVE_STATES, type EngineResult } from './upgrade.engine.js';

function condition(prev: Record<string, unknown>, c: Omit<Condition, 'lastTransitionTime'>): Condition {
  const old = ((prev.conditions as Condition[] | undefined) ?? []).find((x) => x.type === c.type);
  return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : new Date().toISOString() };
}

/**
 * Adds the upgrade to a cluster status: `upgrade` (per-node progress), `profileRevision` (the
 * revision every node runs), an `Upgrading` condition, and the phase rules of the rollout contract:
 * Running while an upgrade rolls (nodes are disrupted one window at a time by design), Degraded
 * with a Ready condition naming the node when it failed.
 */
export function withUpgrade(
  status: Record<string, unknown>,
  s: { spec: ClusterSpec; prev: Record<string, unknown>; upgrade?: EngineResult },
): Record<string, unknown> {
  const u = s.upgrade?.upgrade;
  const out: Record<string, unknown> = { ...status };
  let conditions = [...((status.conditions as Condition[]) ?? [])];
  const active = !!u && ACTIVE_STATES.includes(u.state) && !!s.upgrade?.pending;
  if (s.upgrade && !s.upgrade.pending && status.phase === 'Running') out.profileRevision = s.spec.profile.revision;
  else if (!s.upgrade && status.phase === 'Running') out.profileRevision = s.spec.profile.revision;
  else if (u && s.upgrade?.pending) {
    // Nodes still run the revision before the upgrade; never the target while any node differs
    // (a rollback to the revision a failed upgrade started from must not look converged at once).
    if (u.fromRevision !== undefined && u.fromRevision !== s.spec.profile.revision) out.profileRevision = u.fromRevision;
  } else if (s.prev.profileRevision !== undefined) out.profileRevision = s.prev.profileRevision;
  if (s.upgrade?.status) out.upgrade = s.upgrade.status;
  if (u && s.upgrade?.status) {
    const done = s.upgrade.status.nodes.filter((n) => n.phase === 'Done' || n.phase === 'Skipped').length;
    const total = s.upgrade.status.nodes.length;
    conditions.push(
      condition(s.prev, {
        type: 'Upgrading',
        status: active ? 'True' : 'False',
        reason: u.state,
        message: `upgrade ${u.id} to revision ${u.toRevision}: ${done}/${total} node(s) done${u.message ? `; ${u.message}` : ''}`,
      }),
    );
    if (active && u.state !== 'Paused' && status.phase === 'Degraded') out.phase = 'Running';
    if (u.state === 'Failed' && s.upgrade.pending) {
      out.phase = 'Degraded';
      conditions = conditions.map((c) =>
        c.type === 'Ready'
          ? condition(s.prev, { type: 'Ready', status: 'False', reason: 'UpgradeFailed', message: u.message ?? `upgrade failed on ${u.failedHost}` })
          : c,
      );
    }
  }
  out.conditions = conditions;
  return out;
}
