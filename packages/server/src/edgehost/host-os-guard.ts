import type { OsSpec } from '@edgeplane/protocol';
import { commandChecks, requireRunCommands } from '../http/authz.js';
import type { RequestContext } from '../resource/context.js';
import type { Executor } from '../store/db.js';

/** JSON with sorted keys, so two specs that differ only in key order compare equal. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/**
 * A host's spec.os written by hand (not rendered from spec.osProfile) picks the image a device boots
 * and the health-check commands it runs as root after the trial boot: as strong as a remote shell.
 * So a new or changed hand-written spec.os needs the remote-shell permission (requireRunCommands)
 * and is audited (`edgehost.os.set`, with image, digest and each command check's argv). Assigning a
 * host OS profile (spec.osProfile) stays an operator action: the profile's own command checks were
 * written by someone holding the permission. Leaving spec.os unchanged, or removing it, needs nothing.
 */
export async function guardHostOs(
  db: Executor,
  host: string,
  prev: { os?: OsSpec } | undefined,
  next: { os?: OsSpec; osProfile?: unknown },
  ctx: RequestContext,
): Promise<void> {
  if (next.osProfile !== undefined || next.os === undefined) return;
  if (prev?.os !== undefined && canonical(prev.os) === canonical(next.os)) return;
  await requireRunCommands(db, ctx, `setting spec.os of host "${host}" by hand (not through spec.osProfile)`);
  ctx.audit?.record({
    action: 'edgehost.os.set',
    target: `edgehosts/${host}`,
    details: { image: next.os.image, digest: next.os.digest, commandChecks: commandChecks(next.os.healthChecks) },
  });
}
