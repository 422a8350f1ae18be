import type { RolloutClusterState, RolloutClusterStatus } from '@edgeplane/protocol';
import { useQuery } from '@tanstack/react-query';
import { useMemo } from 'react';
import { api } from '../lib/api';
import { navigate } from '../lib/router';
import { SiteMap, type SiteMapPoint } from './SiteMap';

/** How a site reads on the rollout's map: the state of its clusters that matters most (higher wins). */
const STATES: Record<RolloutClusterState, { color: string; label: string; severity: number }> = {
  failed: { color: '#c62828', label: 'failed', severity: 6 },
  upgrading: { color: '#1e6fd9', label: 'upgrading', severity: 5 },
  staging: { color: '#e69500', label: 'pre-staging', severity: 4 },
  'waiting-for-window': { color: '#e69500', label: 'waiting for window', severity: 4 },
  pending: { color: '#7d8894', label: 'pending', severity: 3 },
  succeeded: { color: '#2e8540', label: 'succeeded', severity: 2 },
  skipped: { color: '#c3c9d0', label: 'skipped', severity: 1 },
};
const LEGEND = (['succeeded', 'upgrading', 'waiting-for-window', 'pending', 'failed', 'skipped'] as const).map((s) => STATES[s]);

/**
 * Where a rollout stands, site by site: every site of its target clusters on the site map, coloured by
 * the most pressing state of its clusters (failed over upgrading over waiting, and so on), with the
 * clusters' states on hover and a click through to the site. Sites without coordinates are counted
 * under the map instead.
 */
export function RolloutSiteMap({ clusters }: { clusters: RolloutClusterStatus[] }) {
  // Every Site (the watch keeps the list live); a rollout's clusters may sit anywhere in the fleet.
  const sites = useQuery({ queryKey: ['list', 'sites', 'all'], queryFn: () => api.listAll('sites') });
  const bySite = useMemo(() => {
    const m = new Map<string, RolloutClusterStatus[]>();
    for (const c of clusters) {
      if (!c.site) continue;
      const list = m.get(c.site);
      if (list) list.push(c);
      else m.set(c.site, [c]);
    }
    return m;
  }, [clusters]);
  const { points, counts, unplaced } = useMemo(() => {
    const where = new Map((sites.data?.items ?? []).map((s) => [s.metadata.name, s.spec.coordinates as { latitude: number; longitude: number } | undefined]));
    const points: SiteMapPoint[] = [];
    const counts = new Map<string, number>();
    let unplaced = 0;
    for (const [site, members] of bySite) {
      const worst = members.reduce((a, c) => (STATES[c.state].severity > STATES[a.state].severity ? c : a));
      const look = STATES[worst.state];
      counts.set(look.label, (counts.get(look.label) ?? 0) + 1);
      const at = where.get(site);
      if (!at) {
        unplaced++;
        continue;
      }
      const detail =
        members
          .slice(0, 5)
          .map((c) => `${c.name}: ${STATES[c.state].label}`)
          .join(', ') + (members.length > 5 ? ` and ${members.length - 5} more` : '');
      points.push({ name: site, latitude: at.latitude, longitude: at.longitude, color: look.color, severity: look.severity, state: look.label, detail });
    }
    return { points, counts, unplaced };
  }, [sites.data, bySite]);
  if (bySite.size === 0) return null;
  return (
    <section aria-labelledby="ro-map">
      <h2 id="ro-map">Sites</h2>
      <SiteMap
        sites={points}
        height={360}
        label="Sites of this rollout by state"
        fitToSites
        legend={LEGEND.map((l) => ({ label: l.label, color: l.color }))}
        onSelect={(name) => navigate(`/sites/${encodeURIComponent(name)}`)}
      />
      <p className="muted" data-testid="rollout-map-status" role="status">
        {bySite.size} site{bySite.size === 1 ? '' : 's'}:{' '}
        {[...counts.entries()]
          .sort((a, b) => b[1] - a[1])
          .map(([label, n]) => `${n} ${label}`)
          .join(', ')}
        {unplaced > 0 ? ` (${unplaced} without coordinates, not on the map)` : ''}
      </p>
    </section>
  );
}
