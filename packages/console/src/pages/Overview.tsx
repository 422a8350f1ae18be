import type { FleetSummary } from '@edgeplane/protocol';
import { useQuery } from '@tanstack/react-query';
import { useMemo } from 'react';
import { FleetHealth } from '../components/FleetHealth';
import { FleetVersions } from '../components/FleetVersions';
import { objectPath } from '../components/Layout';
import { SiteMap, type SiteMapPoint } from '../components/SiteMap';
import { Empty, ErrorBox, Loading, StateBadge } from '../components/ui';
import { api, formatValue, type Resource } from '../lib/api';
import { useAuth } from '../lib/auth';
import { HEALTH, HEALTH_ORDER, siteDetail, useFleet } from '../lib/fleet';
import { Link, navigate } from '../lib/router';

function Stat({ label, value, to }: { label: string; value: number; to: string }) {
  return (
    <Link to={to} className="stat" data-testid={`stat-${label.toLowerCase().replace(/\s+/g, '-')}`}>
      <span className="stat-value">{value}</span>
      <span className="stat-label">{label}</span>
    </Link>
  );
}

function RecentEvents({ events }: { events: Resource[] }) {
  if (events.length === 0) return <Empty>No events yet: they appear as hosts register, connect and report.</Empty>;
  // Newest first by time, whichever order the summary lists them in.
  const byTime = [...events].sort((a, b) => Date.parse(b.status.lastTimestamp ?? '') - Date.parse(a.status.lastTimestamp ?? ''));
  return (
    <div className="table-scroll short">
      <table>
        <thead>
          <tr>
            <th scope="col">when</th>
            <th scope="col">type</th>
            <th scope="col">reason</th>
            <th scope="col">object</th>
            <th scope="col">message</th>
          </tr>
        </thead>
        <tbody>
          {byTime.map((e) => (
            <tr key={e.metadata.name}>
              <td>{formatValue(e.status.lastTimestamp)}</td>
              <td>
                <StateBadge value={e.spec.type} />
              </td>
              <td>{e.spec.reason}</td>
              <td>
                {e.spec.involvedObject?.name ? (
                  <Link to={objectPath(e.spec.involvedObject.kind, e.spec.involvedObject.name)}>{e.spec.involvedObject.name}</Link>
                ) : (
                  '—'
                )}
              </td>
              <td>{e.spec.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const LEGEND = HEALTH_ORDER.map((h) => ({ label: HEALTH[h].label, color: HEALTH[h].color }));

/** The sites with coordinates on a map, coloured by health; a click opens the site. */
function FleetMap({ fleet }: { fleet: FleetSummary }) {
  const points = useMemo<SiteMapPoint[]>(
    () =>
      fleet.sites
        .filter((s) => s.latitude !== undefined && s.longitude !== undefined)
        .map((s) => ({
          name: s.name,
          latitude: s.latitude!,
          longitude: s.longitude!,
          color: HEALTH[s.health].color,
          severity: HEALTH[s.health].severity,
          state: HEALTH[s.health].label,
          detail: `${s.displayName ? `${s.displayName} · ` : ''}${siteDetail(s)}`,
        })),
    [fleet],
  );
  const counts = HEALTH_ORDER.map((h) => [h, fleet.sites.filter((s) => s.health === h).length] as const).filter(([, n]) => n > 0);
  const unplaced = fleet.sites.length - points.length;
  return (
    <>
      <p role="status" data-testid="map-status">
        {fleet.sites.length.toLocaleString()} sites: {counts.map(([h, n]) => `${n.toLocaleString()} ${HEALTH[h].label}`).join(', ')}
        {unplaced > 0 && (
          <>
            {' '}
            · <Link to="/sites?placed=no">{unplaced.toLocaleString()} without coordinates</Link> (not on the map)
          </>
        )}
      </p>
      <SiteMap sites={points} legend={LEGEND} label="Sites by health" onSelect={(name) => navigate(`/sites/${encodeURIComponent(name)}`)} />
    </>
  );
}

export function Overview() {
  const { can } = useAuth();
  const summary = useQuery({ queryKey: ['summary'], queryFn: api.summary, refetchInterval: 30_000 });
  const fleet = useFleet(can('sites', 'list') && can('edgehosts', 'list'));
  const h = summary.data?.hosts;
  return (
    <>
      <h1>Overview</h1>
      <section aria-labelledby="map-h">
        <h2 id="map-h">Sites</h2>
        {fleet.isPending && fleet.fetchStatus !== 'idle' && <Loading what="the site map" />}
        <ErrorBox error={fleet.error} title="Could not load the fleet summary" />
        {fleet.data &&
          (fleet.data.sites.length > 0 ? <FleetMap fleet={fleet.data} /> : <Empty>No sites yet: create Sites with coordinates to see them on the map.</Empty>)}
      </section>
      <section aria-labelledby="hosts-h">
        <h2 id="hosts-h">Edge hosts</h2>
        {summary.isPending && <Loading what="host counts" />}
        <ErrorBox error={summary.error} title="Could not load host counts" />
        {h && (
          <div className="stats">
            <Stat label="Total" value={h.total} to="/hosts" />
            <Stat label="Online" value={h.byConnectivity.online ?? 0} to="/hosts?connectivity=online" />
            <Stat label="Offline" value={h.byConnectivity.offline ?? 0} to="/hosts?connectivity=offline" />
            <Stat label="Pending approval" value={h.byState['pending-approval'] ?? 0} to="/hosts?state=pending-approval" />
          </div>
        )}
      </section>
      {summary.data?.clusters && (
        <section aria-labelledby="clusters-h">
          <h2 id="clusters-h">Clusters</h2>
          <div className="stats">
            <Stat label="Clusters" value={summary.data.clusters.total} to="/clusters" />
            {Object.entries(summary.data.clusters.byPhase).map(([phase, n]) => (
              <Stat key={phase} label={phase} value={n} to="/clusters" />
            ))}
          </div>
        </section>
      )}
      {fleet.data && fleet.data.sites.length > 0 && (
        <section aria-labelledby="health-h">
          <h2 id="health-h">Fleet health</h2>
          <FleetHealth sites={fleet.data.sites} clusters={!!fleet.data.versions} />
        </section>
      )}
      {fleet.data?.versions && (
        <section aria-labelledby="versions-h">
          <h2 id="versions-h">Versions</h2>
          <FleetVersions versions={fleet.data.versions} />
        </section>
      )}
      <section aria-labelledby="events-h">
        <h2 id="events-h">Recent events</h2>
        {summary.data && <RecentEvents events={summary.data.recentEvents} />}
      </section>
    </>
  );
}
