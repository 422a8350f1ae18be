import type { FleetSite, SiteHealth } from '@edgeplane/protocol';
import { formatValue } from '../lib/api';
import { addSite, byRegion, type Counts, emptyCounts, HEALTH, HEALTH_ORDER, worstSites } from '../lib/fleet';
import { Link } from '../lib/router';
import './fleet.css';

const HOST_COLUMNS: { label: string; count: (c: Counts) => number; query: string }[] = [
  { label: 'online', count: (c) => c.hosts.byConnectivity.online ?? 0, query: 'connectivity=online' },
  { label: 'offline', count: (c) => c.hosts.byConnectivity.offline ?? 0, query: 'connectivity=offline' },
  { label: 'unknown', count: (c) => c.hosts.byConnectivity.unknown ?? 0, query: 'connectivity=unknown' },
  { label: 'pending', count: (c) => c.hosts.byState['pending-approval'] ?? 0, query: 'state=pending-approval' },
];
const CLUSTER_COLUMNS: { label: string; count: (c: Counts) => number; query: string }[] = [
  { label: 'Running', count: (c) => c.clusters.byPhase.Running ?? 0, query: 'phase=Running' },
  { label: 'Provisioning', count: (c) => c.clusters.byPhase.Provisioning ?? 0, query: 'phase=Provisioning' },
  { label: 'Degraded', count: (c) => c.clusters.byPhase.Degraded ?? 0, query: 'phase=Degraded' },
  { label: 'Failed', count: (c) => c.clusters.byPhase.Failed ?? 0, query: 'phase=Failed' },
  { label: 'upgrading', count: (c) => c.clusters.upgrading, query: 'upgrading=true' },
];

const q = (...parts: (string | false | undefined)[]) => {
  const s = parts.filter(Boolean).join('&');
  return s ? `?${s}` : '';
};
const enc = (k: string, v: string) => `${k}=${encodeURIComponent(v)}`;
/** Today's changes as a time, older ones as a date: the full time is in the cell's title. */
function shortTime(iso: string | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleDateString();
}

/** A count that opens the list behind it; zero stays plain text (nothing to open). */
function Cell({ n, to, label, tone }: { n: number; to: string; label: string; tone?: 'bad' | 'warn' }) {
  if (n === 0) return <td className="num muted">0</td>;
  return (
    <td className={`num ${tone ?? ''}`}>
      <Link to={to} aria-label={`${n} ${label}`}>
        {n.toLocaleString()}
      </Link>
    </td>
  );
}

/** Sites of a row by health as coloured chips, each opening the sites list filtered to it. */
function HealthChips({ health, base }: { health: Record<SiteHealth, number>; base: string[] }) {
  return (
    <span className="health-chips">
      {HEALTH_ORDER.filter((h) => health[h] > 0).map((h) => (
        <Link
          key={h}
          to={`/sites${q(...base, enc('health', h))}`}
          className="health-chip"
          title={HEALTH[h].label}
          aria-label={`${health[h]} sites ${HEALTH[h].label}`}
        >
          <i style={{ background: HEALTH[h].color }} />
          {health[h].toLocaleString()}
        </Link>
      ))}
    </span>
  );
}

const TONE: Record<string, 'bad' | 'warn' | undefined> = { offline: 'bad', Failed: 'bad', Degraded: 'warn', unknown: 'warn', pending: 'warn' };

function Head({ first, second, clusters }: { first: string; second: string; clusters: boolean }) {
  return (
    <thead>
      <tr>
        <th scope="col" rowSpan={2}>
          {first}
        </th>
        <th scope="col" rowSpan={2}>
          {second}
        </th>
        <th scope="colgroup" colSpan={HOST_COLUMNS.length} className="group">
          hosts
        </th>
        {clusters && (
          <th scope="colgroup" colSpan={CLUSTER_COLUMNS.length} className="group">
            clusters
          </th>
        )}
        <th scope="col" rowSpan={2}>
          changed
        </th>
      </tr>
      <tr>
        {HOST_COLUMNS.map((c) => (
          <th key={c.label} scope="col" className="num">
            {c.label}
          </th>
        ))}
        {clusters &&
          CLUSTER_COLUMNS.map((c) => (
            <th key={c.label} scope="col" className="num">
              {c.label}
            </th>
          ))}
      </tr>
    </thead>
  );
}

/**
 * Row cells of the grid. `hostsAt`/`clustersAt` build the list a count opens: the hosts or clusters
 * lists (filtered by site) for a site, the sites list (filtered by region) for a region.
 */
function Row({
  head,
  c,
  clusters,
  hostsAt,
  clustersAt,
  base,
  health,
}: {
  head: React.ReactNode;
  c: Counts;
  clusters: boolean;
  hostsAt: (query: string) => string;
  clustersAt: (query: string) => string;
  base: string[];
  /** A single site's row: its health in words instead of counts of sites. */
  health?: SiteHealth;
}) {
  return (
    <tr>
      <th scope="row">{head}</th>
      <td>
        {health ? (
          <span className="health-chip">
            <i style={{ background: HEALTH[health].color }} /> {HEALTH[health].label}
          </span>
        ) : (
          <HealthChips health={c.health} base={base} />
        )}
      </td>
      {HOST_COLUMNS.map((col) => (
        <Cell
          key={col.label}
          n={col.count(c)}
          to={hostsAt(col.query)}
          label={`hosts ${col.label === 'pending' ? 'pending approval' : col.label}`}
          tone={TONE[col.label]}
        />
      ))}
      {clusters &&
        CLUSTER_COLUMNS.map((col) => (
          <Cell key={col.label} n={col.count(c)} to={clustersAt(col.query)} label={`clusters ${col.label}`} tone={TONE[col.label]} />
        ))}
      <td className="when" title={c.lastChange ? formatValue(c.lastChange) : undefined}>
        {shortTime(c.lastChange)}
      </td>
    </tr>
  );
}

/**
 * Fleet health: hosts by connectivity and state and clusters by phase, for the whole fleet, per
 * region (the Site `region` label) and for the sites that need a look first, with when each last
 * changed. Every count opens the list behind it, filtered through the URL. `clusters`: whether the
 * caller may see clusters (the summary then has versions), so their columns are shown.
 */
export function FleetHealth({ sites, clusters, worst = 8 }: { sites: FleetSite[]; clusters: boolean; worst?: number }) {
  const total = sites.reduce(addSite, emptyCounts());
  const regions = byRegion(sites);
  const attention = worstSites(sites, worst);
  return (
    <div className="fleet-grid" data-testid="fleet-health">
      <div className="table-scroll short">
        <table>
          <Head first="region" second="sites" clusters={clusters} />
          <tbody>
            <Row head="Whole fleet" c={total} clusters={clusters} hostsAt={(x) => `/hosts?${x}`} clustersAt={(x) => `/clusters?${x}`} base={[]} />
            {regions.map(([region, c]) => {
              const r = enc('region', region);
              return (
                <Row
                  key={region}
                  head={region}
                  c={c}
                  clusters={clusters}
                  hostsAt={(x) => `/sites?${r}&${x}`}
                  clustersAt={(x) => `/sites?${r}&${x}`}
                  base={[r]}
                />
              );
            })}
          </tbody>
        </table>
      </div>
      {attention.length > 0 && (
        <>
          <h3>Sites that need a look first</h3>
          <div className="table-scroll short">
            <table data-testid="attention-sites">
              <Head first="site" second="health" clusters={clusters} />
              <tbody>
                {attention.map((s) => {
                  const site = enc('site', s.name);
                  return (
                    <Row
                      key={s.name}
                      head={<Link to={`/sites/${encodeURIComponent(s.name)}`}>{s.displayName ?? s.name}</Link>}
                      c={addSite(emptyCounts(), s)}
                      clusters={clusters}
                      hostsAt={(x) => `/hosts?${site}&${x}`}
                      clustersAt={(x) => `/clusters?${site}&${x}`}
                      base={[enc('q', s.name)]}
                      health={s.health}
                    />
                  );
                })}
              </tbody>
            </table>
          </div>
        </>
      )}
    </div>
  );
}
