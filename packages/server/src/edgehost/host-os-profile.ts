import {
  type Condition,
  EdgeplaneError,
  type HostOsProfileRef,
  type HostOsRolloutStatus,
  type OsSpec,
  type OsStatus,
  osCommittedOn,
} from '@edgeplane/protocol';
import { clusterOf } from '../cluster/host-claims.js';
import { checkHostOsMode, requireOsLayer } from '../cluster/os-mode.js';
import { renderOs } from '../cluster/render.js';
import { findRevision, latestRevisionNumber } from '../cluster-profile/cluster-profile.repository.js';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { recordEvent } from '../event/event.service.js';
import type { RequestContext } from '../resource/context.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import type { Executor } from '../store/db.js';

/**
 * Host OS profiles: a host outside any cluster (a Virtualized Edge appliance, a plain gateway) gets
 * its OS from a profile revision named in EdgeHost spec.osProfile. The server renders spec.os from
 * it when the host spec is written (same transaction, so a refusal writes nothing) and the agent's
 * os manager applies it with the same A/B rules as a cluster node's.
 */

/** Spec keys the controllers write (cluster controller, virt controller); a PUT that leaves them out keeps them. */
const CONTROLLER_KEYS = ['maintenance', 'kubernetes', 'addons', 'virt'] as const;

type HostSpecJson = Record<string, unknown> & { osProfile?: HostOsProfileRef; os?: OsSpec };

/** The variable values of a host OS profile: hosts give none, so every variable takes its default. */
function defaultValues(profile: PinnedProfileSpec, name: string, revision: number): Record<string, string> {
  const missing = profile.variables.filter((v) => v.required && v.default === undefined).map((v) => v.name);
  if (missing.length)
    throw new EdgeplaneError(
      'MissingVariable',
      `profile "${name}" revision ${revision} requires variable(s) ${missing.join(', ')} without a default; a host OS profile takes defaults only`,
      { variables: missing },
    );
  return Object.fromEntries(profile.variables.map((v) => [v.name, v.default ?? '']));
}

async function checkAssignable(db: Executor, row: ResourceRow, ref: HostOsProfileRef): Promise<void> {
  const cluster = clusterOf(row);
  if (cluster || row.state === 'in-use')
    throw new EdgeplaneError(
      'HostInCluster',
      `host "${row.name}" is a node of cluster "${cluster ?? '?'}"; its OS comes from the cluster's profile, not spec.osProfile`,
      { host: row.name, cluster },
    );
  if (row.state !== 'ready')
    throw new EdgeplaneError('HostNotApproved', `host "${row.name}" is ${row.state}, not approved; approve it before assigning an OS profile`, {
      host: row.name,
      state: row.state,
    });
  if (!(await db.selectFrom('cluster_profiles').select('name').where('name', '=', ref.name).executeTakeFirst()))
    throw new EdgeplaneError('ProfileNotFound', `cluster profile "${ref.name}" does not exist`, { profile: ref.name });
}

/**
 * The spec to store for a host update: controller-owned keys kept when the request leaves them
 * out, and with spec.osProfile the revision pinned and spec.os rendered from it (a user's own
 * spec.os is then replaced). Removing spec.osProfile removes spec.os; the agent keeps what it runs.
 * Refuses (nothing written) an unknown profile or revision, a cluster node and an unapproved host.
 */
export async function hostSpecForUpdate(db: Executor, row: ResourceRow, input: Record<string, unknown>, ctx: RequestContext): Promise<HostSpecJson> {
  const prev = JSON.parse(row.spec) as HostSpecJson;
  const next: HostSpecJson = { ...input };
  for (const k of CONTROLLER_KEYS) if (next[k] === undefined && prev[k] !== undefined) next[k] = prev[k];
  // A cluster node's os is the cluster controller's too.
  if (clusterOf(row) && next.os === undefined && prev.os !== undefined) next.os = prev.os;

  const ref = next.osProfile;
  if (!ref) {
    if (prev.osProfile) {
      delete next.os;
      await osProfileEvent(
        db,
        row.name,
        'OsProfileRemoved',
        `host OS profile "${prev.osProfile.name}" removed by ${ctx.user}; the host keeps the image it runs`,
      );
    }
    return next;
  }
  // Same profile without a revision: keep the one pinned at assignment (moving on is explicit).
  const pinned = ref.revision ?? (prev.osProfile?.name === ref.name ? prev.osProfile.revision : undefined);
  const changed = prev.osProfile?.name !== ref.name || prev.osProfile?.revision !== pinned;
  if (changed) await checkAssignable(db, row, ref);
  const revision = pinned ?? (await latestRevisionNumber(db, ref.name));
  const rev = revision > 0 ? await findRevision(db, ref.name, revision) : undefined;
  if (!rev) throw new EdgeplaneError('ProfileRevisionNotFound', `cluster profile "${ref.name}" has no revision ${revision}`, { profile: ref.name, revision });
  const profile = JSON.parse(rev.spec) as PinnedProfileSpec;
  // A host OS profile manages the OS only: it needs an os layer and a host with A/B slots.
  requireOsLayer(profile, { name: ref.name, revision }, 'a host OS profile');
  if (changed) checkHostOsMode(row, profile, { name: ref.name, revision });
  next.osProfile = { name: ref.name, revision };
  next.os = renderOs(profile, defaultValues(profile, ref.name, revision), { name: ref.name, revision });
  if (changed || prev.os?.digest !== next.os.digest)
    await osProfileEvent(
      db,
      row.name,
      'OsProfileAssigned',
      `host OS profile "${ref.name}" revision ${revision} (${next.os.image}, ${next.os.digest}) assigned by ${ctx.user}`,
    );
  return next;
}

async function osProfileEvent(db: Executor, host: string, reason: 'OsProfileAssigned' | 'OsProfileRemoved', message: string): Promise<void> {
  await recordEvent(db, { involvedObject: { kind: 'EdgeHost', name: host }, type: 'Normal', reason, message, source: 'server' });
}

/** A pre-registered host is not approved yet: it cannot take an OS profile at creation. */
export function refuseOsProfileOnCreate(name: string, spec: Record<string, unknown>): void {
  if (spec.osProfile !== undefined)
    throw new EdgeplaneError('HostNotApproved', `host "${name}" is pre-registered, not approved; assign spec.osProfile once it is approved`, {
      host: name,
      state: 'pre-registered',
    });
}

/** Hosts whose spec.osProfile names `profile` (JSON in text: narrowed in SQL, checked in code). */
export async function hostsUsingOsProfile(db: Executor, profile: string): Promise<string[]> {
  const rows = await db.selectFrom('edge_hosts').select(['name', 'spec']).where('spec', 'like', '%"osProfile":%').execute();
  return rows.filter((r) => (JSON.parse(r.spec) as HostSpecJson).osProfile?.name === profile).map((r) => r.name);
}

/**
 * The OS rollout of a host as the API shows it (status.os and the OsUpToDate condition): desired
 * (spec.os, its osProfile revision) against what the agent's os manager last reported.
 */
export function osRollout(spec: HostSpecJson, agentOs: OsStatus | undefined): { os?: HostOsRolloutStatus; condition?: Condition } {
  if (!spec.os?.digest) return {};
  // A trial boot of the desired image is not up to date until its health checks commit it.
  const upToDate = osCommittedOn(agentOs, spec.os.digest) && !agentOs?.error;
  const os: HostOsRolloutStatus = {
    ...(spec.osProfile ? { profile: spec.osProfile.name, revision: spec.osProfile.revision } : {}),
    image: spec.os.image,
    desiredDigest: spec.os.digest,
    ...(agentOs
      ? { digest: agentOs.digest, bootedSlot: agentOs.bootedSlot, activeSlot: agentOs.activeSlot, phase: agentOs.phase, message: agentOs.message }
      : {}),
    upToDate,
  };
  const reason = upToDate ? 'Committed' : !agentOs ? 'NotReported' : agentOs.phase === 'FellBack' || agentOs.phase === 'Failed' ? agentOs.phase : 'Updating';
  const message = upToDate
    ? `running ${spec.os.digest} from slot ${agentOs?.bootedSlot}`
    : `desired ${spec.os.digest}, running ${agentOs?.digest ?? 'unknown'}${agentOs?.message ? `: ${agentOs.message}` : ''}`;
  return { os, condition: { type: 'OsUpToDate', status: upToDate ? 'True' : 'False', reason, message } };
}
