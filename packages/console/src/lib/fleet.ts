import { FLEET_SUMMARY_PATH, type FleetSite, type FleetSummary, type SiteHealth } from '@edgeplane/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { request } from './api';
import { takeEarlyFleet } from './early-reads';

/** How each health reads on the map and in the grid: colour, words, and how much it matters (higher wins in a group). */
export const HEALTH: Record<SiteHealth, { color: string; label: string; severity: number }> = {
  offline: { color: '#c62828', label: 'offline', severity: 4 },
  degraded: { color: '#e69500', label: 'degraded', severity: 3 },
  upgrading: { color: '#1e6fd9', label: 'upgrading', severity: 2 },
  online: { color: '#2e8540', label: 'all online', severity: 1 },
  empty: { color: '#9aa3ad', label: 'no hosts in service', severity: 0 },
};
export const HEALTH_ORDER: SiteHealth[] = ['offline', 'degraded', 'upgrading', 'online', 'empty'];

const KINDS_SHOWN = new Set(['edgehosts', 'clusters', 'sites']);
const REFRESH_MS = 500;

/**
 * The fleet summary (GET /api/v1/fleet/summary), kept live: the watch writes every changed host,
 * cluster and site into the query cache, and each burst of such writes re-reads the summary once,
 * at most every REFRESH_MS and never cancelling a read in flight (with thousands of hosts changing,
 * a cancelled re-read would start over forever and the map would never update).
 */
export function useFleet(enabled = true) {
  const qc = useQueryClient();
  useEffect(() => {
    if (!enabled) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refresh = () => {
      timer = undefined;
      if (qc.isFetching({ queryKey: ['fleet'] }) > 0) timer = setTimeout(refresh, REFRESH_MS);
      else void qc.refetchQueries({ queryKey: ['fleet'] }, { cancelRefetch: false });
    };
    return qc.getQueryCache().subscribe((e) => {
      const [what, plural] = e.query.queryKey as [string, string];
      if ((what !== 'get' && what !== 'list') || !KINDS_SHOWN.has(plural)) return;
      if (e.type !== 'added' && e.type !== 'updated' && e.type !== 'removed') return;
      if (e.type === 'updated' && e.action.type !== 'success') return;
      if (!timer) timer = setTimeout(refresh, REFRESH_MS);
    });
  }, [qc, enabled]);
  return useQuery({ ...fleetQuery, enabled, refetchInterval: 60_000 });
}

/** The fleet summary's query (the App starts it early on the Overview, next to the sign-in check). */
export const fleetQuery = { queryKey: ['fleet'], queryFn: () => takeEarlyFleet<FleetSummary>() ?? request<FleetSummary>('GET', FLEET_SUMMARY_PATH) };

export interface Counts {
  hosts: FleetSite['hosts'];
  clusters: NonNullable<FleetSite['clusters']>;
  health: Record<SiteHealth, number>;
  sites: number;
  lastChange?: string;
}
export const emptyCounts = (): Counts => ({
  hosts: { total: 0, byConnectivity: {}, byState: {} },
  clusters: { total: 0, byPhase: {}, upgrading: 0 },
  health: { online: 0, degraded: 0, offline: 0, upgrading: 0, empty: 0 },
  sites: 0,
});
const add = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
};
/** Adds one site's counts into a row of the health grid (a region, or the whole fleet). */
export function addSite(c: Counts, s: FleetSite): Counts {
  c.sites++;
  c.health[s.health]++;
  c.hosts.total += s.hosts.total;
  add(c.hosts.byConnectivity, s.hosts.byConnectivity);
  add(c.hosts.byState, s.hosts.byState);
  if (s.clusters) {
    c.clusters.total += s.clusters.total;
    c.clusters.upgrading += s.clusters.upgrading;
    add(c.clusters.byPhase, s.clusters.byPhase);
  }
  if (s.lastChange && (!c.lastChange || s.lastChange > c.lastChange)) c.lastChange = s.lastChange;
  return c;
}

/** NO_REGION: the grid row of sites without a `region` label. */
export const NO_REGION = '(no region)';
/** Sites summed per `region` label, regions by name with the unlabelled last. */
export function byRegion(sites: readonly FleetSite[]): [string, Counts][] {
  const m = new Map<string, Counts>();
  for (const s of sites) {
    const r = s.region ?? NO_REGION;
    let c = m.get(r);
    if (!c) {
      c = emptyCounts();
      m.set(r, c);
    }
    addSite(c, s);
  }
  return [...m.entries()].sort(([a], [b]) => (a === NO_REGION ? 1 : b === NO_REGION ? -1 : a.localeCompare(b)));
}

/** Sites that need a look first: most severe health, then most hosts not online, then name. */
export function worstSites(sites: readonly FleetSite[], n: number): FleetSite[] {
  const notOnline = (s: FleetSite) => s.hosts.total - (s.hosts.byConnectivity.online ?? 0);
  // Only sites that are not all online compete (few, in a healthy fleet of 10,000), and names compare
  // by code point: localeCompare over thousands of ties costs more than the rest of the page.
  return sites
    .filter((s) => s.health !== 'online' && s.health !== 'empty')
    .sort((a, b) => HEALTH[b.health].severity - HEALTH[a.health].severity || notOnline(b) - notOnline(a) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .slice(0, n);
}

/** "3 of 4 hosts online · 1 cluster Degraded" for a site's hover. */
export function siteDetail(s: FleetSite): string {
  const online = s.hosts.byConnectivity.online ?? 0;
  const parts = [`${HEALTH[s.health].label}: ${online} of ${s.hosts.total} host${s.hosts.total === 1 ? '' : 's'} online`];
  if (s.clusters?.upgrading) parts.push(`${s.clusters.upgrading} upgrading`);
  for (const p of ['Degraded', 'Failed'])
    if (s.clusters?.byPhase[p]) parts.push(`${s.clusters.byPhase[p]} cluster${s.clusters.byPhase[p] === 1 ? '' : 's'} ${p}`);
  return parts.join(' · ');
}
