import { CLUSTER_ANNOTATION, EdgeplaneError } from '@edgeplane/protocol';
import type { RequestContext } from '../resource/context.js';
import type { Executor } from '../store/db.js';
import { findHosts, type HostRow, writeHost } from './cluster.repository.js';

/** The spec keys the cluster controller owns on a host; the rest (site, displayName) are the user's. */
export const MANAGED_SPEC_KEYS = ['maintenance', 'os', 'kubernetes', 'addons'] as const;

export function clusterOf(host: { annotations: string }): string | undefined {
  return (JSON.parse(host.annotations) as Record<string, string>)[CLUSTER_ANNOTATION];
}

/**
 * Marks hosts as members of `cluster` (state in-use + annotation); refuses a host someone else took
 * meanwhile. Joining a cluster is a new attempt at its OS image (os_retry): a host whose trial boot
 * of that image fell back for an earlier cluster tries it again instead of failing at once.
 */
export async function claimHosts(db: Executor, cluster: string, hosts: HostRow[]): Promise<void> {
  for (const checked of hosts) {
    // Agents' status reports and connectivity flushes write hosts all the time; one that slipped in
    // after the checks is re-read, and the claim applied on top of it as long as what the checks
    // looked at (state, cluster membership) is unchanged (a few tries before giving up with Conflict).
    let h = checked;
    for (let attempt = 0; ; attempt++) {
      const annotations = { ...JSON.parse(h.annotations), [CLUSTER_ANNOTATION]: cluster };
      const ok = await writeHost(db, h.name, Number(h.resource_version), {
        state: 'in-use',
        annotations: JSON.stringify(annotations),
        bumpOsRetry: reportedFailedImages(h.status).length > 0,
      });
      if (ok) break;
      const [fresh] = await findHosts(db, [h.name]);
      const same = fresh && fresh.state === checked.state && clusterOf(fresh) === clusterOf(checked);
      if (!same || attempt >= 4) throw new EdgeplaneError('Conflict', `host "${h.name}" changed while the cluster was being written; retry`, { host: h.name });
      h = fresh;
    }
  }
}

/** Gives hosts back: managed spec keys cleared (generation bumped, so agents get the empty spec), state ready. */
export async function releaseHosts(db: Executor, cluster: string, names: string[], ctx?: RequestContext): Promise<void> {
  for (const name of names) {
    // The controller and agent reports write member hosts all the time; the release is the operator's
    // decision and is computed from the row as it is now, so a write that slipped in between is
    // re-read and the release applied on top of it (a few tries before giving up with Conflict).
    for (let attempt = 0; ; attempt++) {
      const [h] = await findHosts(db, [name]);
      if (!h || clusterOf(h) !== cluster) break;
      const { [CLUSTER_ANNOTATION]: _drop, ...annotations } = JSON.parse(h.annotations) as Record<string, string>;
      const spec = JSON.parse(h.spec) as Record<string, unknown>;
      for (const k of MANAGED_SPEC_KEYS) delete spec[k];
      const ok = await writeHost(db, h.name, Number(h.resource_version), {
        spec: JSON.stringify(spec),
        annotations: JSON.stringify(annotations),
        state: h.state === 'in-use' ? 'ready' : h.state,
        bumpGeneration: true,
      });
      if (ok) {
        ctx?.hosts?.hostChanged(h.name, 'spec');
        break;
      }
      if (attempt >= 4) throw new EdgeplaneError('Conflict', `host "${h.name}" changed while the cluster was being written; retry`, { host: h.name });
    }
  }
}

/**
 * The OS images whose trial boot fell back on the host, as its agent last reported them. A retry
 * counter moves only for a host that has one: nothing else needs a new attempt.
 */
export function reportedFailedImages(status: string): { digest: string }[] {
  const os = (JSON.parse(status) as { agent?: { managers?: { os?: { failedImages?: { digest: string }[] } } } }).agent?.managers?.os;
  return os?.failedImages ?? [];
}
