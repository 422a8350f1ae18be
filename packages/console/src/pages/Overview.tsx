import { useQuery } from '@tanstack/react-query';
import { objectPath } from '../components/Layout';
import { Empty, ErrorBox, Loading, StateBadge } from '../components/ui';
import { api, formatValue, type Resource } from '../lib/api';
import { Link } from '../lib/router';

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

export function Overview() {
  const summary = useQuery({ queryKey: ['summary'], queryFn: api.summary, refetchInterval: 30_000 });
  const h = summary.data?.hosts;
  return (
    <>
      <h1>Overview</h1>
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
      <section aria-labelledby="events-h">
        <h2 id="events-h">Recent events</h2>
        {summary.data && <RecentEvents events={summary.data.recentEvents} />}
      </section>
    </>
  );
}
