import { z } from 'zod';

export { FLEET_SUMMARY_PATH } from './fleet-path.js';

/**
 * A site's health at a glance, from its hosts and clusters (server: fleet/site-health.ts):
 * `offline` no host in service is online; `upgrading` a cluster's upgrade is staging, rolling or
 * paused; `degraded` some hosts in service are not online, or a cluster is Degraded/Failed or its
 * upgrade failed; `online` every host in service is online; `empty` no host in service (only
 * pending, pre-registered or rejected hosts, or none).
 */
export const SiteHealth = z.enum(['online', 'degraded', 'offline', 'upgrading', 'empty']);
export type SiteHealth = z.infer<typeof SiteHealth>;

const Counts = z.record(z.string(), z.number().int().nonnegative());

export const FleetHostCounts = z.object({
  total: z.number().int().nonnegative(),
  byConnectivity: Counts,
  byState: Counts,
});
export const FleetClusterCounts = z.object({
  total: z.number().int().nonnegative(),
  /** Clusters without a phase yet count as Pending. */
  byPhase: Counts,
  /** Clusters whose upgrade is staging, rolling or paused. */
  upgrading: z.number().int().nonnegative(),
});

export const FleetSite = z.object({
  name: z.string(),
  /** False for a site name hosts or clusters use without a Site object (no coordinates then). */
  defined: z.boolean(),
  displayName: z.string().optional(),
  /** The Site's `region` label. */
  region: z.string().optional(),
  latitude: z.number().optional(),
  longitude: z.number().optional(),
  health: SiteHealth,
  hosts: FleetHostCounts,
  /** Absent when the site has no cluster, or for a caller who may not list clusters (then `versions` is absent too). */
  clusters: FleetClusterCounts.optional(),
  /** When a host or cluster of the site last changed. */
  lastChange: z.string().optional(),
});
export type FleetSite = z.infer<typeof FleetSite>;

/** One OS image or Kubernetes version and the cluster nodes that report running it. */
export const FleetVersion = z.object({
  /** What clusters are filtered by: the image digest, or the Kubernetes version. */
  key: z.string(),
  /** For people: the image reference a profile revision pins for that digest (else the digest). */
  label: z.string(),
  nodes: z.number().int().nonnegative(),
  clusters: z.number().int().nonnegative(),
  /** The first clusters by name (at most 20). */
  clusterNames: z.array(z.string()),
});
export type FleetVersion = z.infer<typeof FleetVersion>;

export const FleetSummary = z.object({
  /** Every Site, and every site name hosts or clusters use, by name. */
  sites: z.array(FleetSite),
  /** Hosts and clusters at no site. */
  unassigned: z.object({ hosts: FleetHostCounts, clusters: FleetClusterCounts.optional() }),
  /** Absent for a caller who may not list clusters. */
  versions: z.object({ os: z.array(FleetVersion), kubernetes: z.array(FleetVersion) }).optional(),
});
export type FleetSummary = z.infer<typeof FleetSummary>;
