import type { SiteHealth } from '@edgeplane/protocol';

/** Hosts that serve a site: the others (pending approval, pre-registered, rejected) say nothing about its health. */
export const IN_SERVICE = new Set(['ready', 'in-use']);
/** Cluster upgrade states during which hosts reboot on purpose. */
export const UPGRADING = new Set(['Staging', 'Rolling', 'Paused']);

export interface HealthInput {
  /** Hosts in service (ready or in use) and how many of them are online. */
  hostsInService: number;
  hostsOnline: number;
  /** Clusters whose phase is Degraded or Failed, or whose upgrade failed. */
  clustersFailing: number;
  /** Clusters whose upgrade is staging, rolling or paused. */
  clustersUpgrading: number;
}

/**
 * A site's health (see SiteHealth in the protocol), most pressing first: offline when none of its
 * hosts in service is online; upgrading while one of its clusters upgrades (its nodes go down one at
 * a time on purpose then); degraded when some hosts in service are not online or a cluster is failing;
 * online when all are; empty without hosts in service.
 */
export function siteHealth(h: HealthInput): SiteHealth {
  if (h.hostsInService > 0 && h.hostsOnline === 0) return 'offline';
  if (h.clustersUpgrading > 0) return 'upgrading';
  if (h.clustersFailing > 0 || h.hostsOnline < h.hostsInService) return 'degraded';
  return h.hostsInService > 0 ? 'online' : 'empty';
}
