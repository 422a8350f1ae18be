import {
  type ClusterProfileRevision,
  type ClusterProfileSpec,
  EdgeplaneError,
  findKind,
  kubernetesVersionProblem,
  variableReferences,
} from '@edgeplane/protocol';
import { hostsUsingOsProfile } from '../edgehost/host-os-profile.js';
import { commandChecks, requireRunCommands } from '../http/authz.js';
import type { RequestContext } from '../resource/context.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import { ResourceService } from '../resource/resource.service.js';
import type { Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import {
  clustersUsingProfile,
  deleteRevisions,
  findRevision,
  insertRevision,
  latestRevisionNumber,
  listRevisions,
  type RevisionRow,
} from './cluster-profile.repository.js';
import { pinImages } from './pin-images.js';

type Pinned<T> = T & { digest: string };
type KubernetesLayer = NonNullable<ClusterProfileSpec['layers']['kubernetes']>;

/**
 * The profile spec as a revision stores it: the OS image (or, without an os layer, the distribution
 * artifact) pinned to its manifest digest.
 */
export type PinnedProfileSpec = ClusterProfileSpec & {
  layers: ClusterProfileSpec['layers'] & {
    os?: Pinned<NonNullable<ClusterProfileSpec['layers']['os']>>;
    kubernetes?: KubernetesLayer & { artifact?: Pinned<NonNullable<KubernetesLayer['artifact']>> };
  };
};

/** Checks what the schema cannot: supported versions and that every ${var.X} is declared. */
export function validateProfileSpec(spec: ClusterProfileSpec): void {
  const k = spec.layers.kubernetes;
  const problem = k && kubernetesVersionProblem(k.distribution, k.version);
  if (k && problem) throw new EdgeplaneError('UnsupportedKubernetesVersion', problem.message, { distribution: k.distribution, version: k.version });
  const declared = new Set(spec.variables.map((v) => v.name));
  for (const ref of [...variableReferences(spec.layers, ['layers']), ...variableReferences(spec.healthChecks ?? [], ['healthChecks'])]) {
    if (!declared.has(ref.name))
      throw new EdgeplaneError('UndeclaredVariable', `${ref.path} references \${var.${ref.name}}, which spec.variables does not declare`, {
        variable: ref.name,
        path: ref.path,
      });
  }
}

/** Validates, pins the OS image digest and writes the next revision; returns the new status. */
async function newRevision(db: Executor, profile: string, spec: ClusterProfileSpec, prevStatus: Record<string, unknown>, ctx: RequestContext) {
  validateProfileSpec(spec);
  const commands = await guardCommandChecks(db, profile, spec, ctx);
  // The server's own resolver (its registry policy and cache), never a process-wide one.
  if (!ctx.images) throw new Error('cluster profile writes need the server image resolver in the request context');
  const pinned = await pinImages(spec, ctx.images);
  const digest = pinned.layers.os?.digest;
  const artifactDigest = pinned.layers.kubernetes?.artifact?.digest;
  const revision = (await latestRevisionNumber(db, profile)) + 1;
  try {
    await insertRevision(db, { profile, revision, spec: JSON.stringify(pinned), created_at: new Date().toISOString() });
  } catch (err) {
    if (isUniqueViolation(err)) throw new EdgeplaneError('Conflict', `ClusterProfile "${profile}" was modified concurrently; read it again and retry`);
    throw err;
  }
  if (commands.length)
    ctx.audit?.record({ action: 'clusterprofile.commands', target: `clusterprofiles/${profile}`, details: { revision, commandChecks: commands } });
  const { osImageDigest: _o, artifactDigest: _a, ...rest } = prevStatus;
  return { ...rest, latestRevision: revision, ...(digest ? { osImageDigest: digest } : {}), ...(artifactDigest ? { artifactDigest } : {}) };
}

/**
 * Command health checks run their argv as root on every node after a trial boot: writing them is as
 * strong as a remote shell. A revision whose command checks differ from the latest revision's (any
 * command check in a new profile) needs the remote-shell permission; other edits of a profile that
 * carries unchanged command checks stay operator work. Returns the revision's command checks (audited).
 */
async function guardCommandChecks(db: Executor, profile: string, spec: ClusterProfileSpec, ctx: RequestContext) {
  const commands = commandChecks(spec.healthChecks);
  if (!commands.length) return commands;
  const latest = await latestRevisionNumber(db, profile);
  const prev = latest > 0 ? await findRevision(db, profile, latest) : undefined;
  const before = prev ? commandChecks((JSON.parse(prev.spec) as ClusterProfileSpec).healthChecks) : [];
  if (JSON.stringify(before) !== JSON.stringify(commands))
    await requireRunCommands(db, ctx, `the command health check(s) ${commands.map((c) => c.name).join(', ')} of profile "${profile}"`);
  return commands;
}

export const clusterProfiles = new ResourceService(findKind('ClusterProfile')!, 'cluster_profiles', {
  async prepareCreate(db, input, ctx) {
    return { status: await newRevision(db, input.metadata.name, input.spec as ClusterProfileSpec, {}, ctx) };
  },
  async prepareUpdate(db, row, spec, ctx) {
    const status = await newRevision(db, row.name, spec as ClusterProfileSpec, JSON.parse(row.status), ctx);
    return { status: JSON.stringify(status) };
  },
  async beforeDelete(db, row) {
    const users = await clustersUsingProfile(db, row.name);
    if (users.length)
      throw new EdgeplaneError('InvalidState', `ClusterProfile "${row.name}" is used by cluster(s) ${users.join(', ')}; delete them first`, {
        clusters: users,
      });
    const hosts = await hostsUsingOsProfile(db, row.name);
    if (hosts.length)
      throw new EdgeplaneError(
        'InvalidState',
        `ClusterProfile "${row.name}" is the OS profile of host(s) ${hosts.join(', ')}; remove their spec.osProfile first`,
        {
          hosts,
        },
      );
    await deleteRevisions(db, row.name);
  },
});

export function revisionObject(row: RevisionRow): ClusterProfileRevision {
  return {
    apiVersion: 'edgeplane.io/v1',
    kind: 'ClusterProfileRevision',
    profile: row.profile,
    revision: Number(row.revision),
    createdAt: row.created_at,
    spec: JSON.parse(row.spec),
  };
}

export async function getRevision(db: Executor, profile: string, revision: number): Promise<ClusterProfileRevision> {
  await clusterProfiles.getRow(db, profile);
  const row = await findRevision(db, profile, revision);
  if (!row) throw new EdgeplaneError('NotFound', `ClusterProfile "${profile}" has no revision ${revision}`, { profile, revision });
  return revisionObject(row);
}

export async function getRevisions(db: Executor, profile: string): Promise<ClusterProfileRevision[]> {
  await clusterProfiles.getRow(db, profile);
  return (await listRevisions(db, profile)).map(revisionObject);
}

export type { ResourceRow };
