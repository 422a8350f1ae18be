import type { ReactNode } from 'react';
import type { Resource } from './api';

/**
 * A host OS profile: a profile (revision) with no kubernetes layer. Hosts take it through
 * EdgeHost spec.osProfile; clusters and rollouts refuse it (ProfileHasNoKubernetes).
 */
export function isOsOnly(spec: { layers?: { kubernetes?: unknown } } | undefined): boolean {
  return !spec?.layers?.kubernetes;
}

/** A digest short enough for a table cell; the full one goes in a title. */
export const shortDigest = (digest?: string) => (digest ? `${digest.slice(0, 15)}…` : '—');

/** The profile list's cells: an OS-only profile has no distribution or version, it says so. */
export function profileCell(r: Resource, path: string): ReactNode | undefined {
  if (path === 'spec.layers.kubernetes.distribution' && isOsOnly(r.spec)) return 'OS only';
  return undefined;
}
