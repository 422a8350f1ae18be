import { useQuery } from '@tanstack/react-query';
import { api } from '../lib/api';
import { ErrorBox, Loading, StateBadge } from './ui';

const SHOWN = 20;

/**
 * A host's connectivity transitions, newest first. The server records them as 'Online' / 'Offline'
 * events when its connection hub flushes connectivity, so this reads the host's events (the watch
 * stream re-reads event lists when one is added) and keeps those two reasons.
 */
export function ConnectivityHistory({ host }: { host: string }) {
  const q = useQuery({
    queryKey: ['list', 'events', 'connectivity', host],
    queryFn: () => api.list('events', { fieldSelector: `involvedObject.kind=EdgeHost,involvedObject.name=${host}`, limit: 500 }),
  });
  if (q.isPending) return <Loading what="connectivity history" />;
  if (q.error) return <ErrorBox error={q.error} title="Could not load the connectivity history" />;
  const at = (e: (typeof q.data.items)[number]) => String(e.status.lastTimestamp ?? e.status.firstTimestamp ?? e.metadata.createdAt);
  const rows = q.data.items
    .filter((e) => e.spec.reason === 'Online' || e.spec.reason === 'Offline')
    .sort((a, b) => at(b).localeCompare(at(a)))
    .slice(0, SHOWN);
  if (rows.length === 0) return <p className="muted">This host has not connected yet.</p>;
  return (
    <ol className="timeline" data-testid="connectivity-history" aria-label="Connectivity changes, newest first">
      {rows.map((e) => (
        <li key={e.metadata.name} data-reason={e.spec.reason}>
          <StateBadge value={e.spec.reason === 'Online' ? 'online' : 'offline'} /> <time dateTime={at(e)}>{new Date(at(e)).toLocaleString()}</time>{' '}
          <span className="muted">{e.spec.message}</span>
        </li>
      ))}
    </ol>
  );
}
