import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type Resource, request } from '../lib/api';
import { useAuth } from '../lib/auth';
import { clock } from './TimeAxis';
import { nodeSteps, type TimedNode, UpgradeTimeline } from './UpgradeTimeline';
import { ErrorBox, StateBadge } from './ui';

interface UpgradeNode extends TimedNode {
  reasons: string[];
  message?: string;
}
export interface UpgradeStatus {
  id: number;
  state: string;
  fromRevision?: number;
  toRevision: number;
  message?: string;
  failedNode?: string;
  startedAt?: string;
  nodes: UpgradeNode[];
}

/** Which actions each upgrade state allows (the server refuses any other with InvalidState). */
const ACTIONS: { verb: string; label: string; from: string[]; confirm?: string }[] = [
  { verb: 'pause', label: 'Pause', from: ['Staging', 'Rolling'] },
  { verb: 'resume', label: 'Resume', from: ['Paused'] },
  { verb: 'retry', label: 'Retry', from: ['Failed'] },
  {
    verb: 'cancel',
    label: 'Cancel upgrade',
    from: ['Staging', 'Rolling', 'Paused'],
    confirm: 'Cancel this upgrade? Nodes not yet taken stay on their current revision; nodes already upgraded are not rolled back.',
  },
];

/**
 * Cluster.status.upgrade: the latest upgrade, its node-by-node steps on a time axis, per-node progress,
 * and pause/resume/retry/cancel for roles that may update clusters.
 */
export function UpgradeProgress({ cluster }: { cluster: Resource }) {
  const { can } = useAuth();
  const qc = useQueryClient();
  const name = cluster.metadata.name;
  const u = cluster.status.upgrade as UpgradeStatus | undefined;
  const act = useMutation({
    mutationFn: (verb: string) => request<{ state: string }>('POST', `/api/v1/clusters/${encodeURIComponent(name)}/${verb}`),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['get', 'clusters', name] }),
  });
  if (!u) return null;
  const actions = can('clusters', 'update') ? ACTIONS.filter((a) => a.from.includes(u.state)) : [];
  const done = u.nodes.filter((n) => n.phase === 'Done' || n.phase === 'Skipped').length;
  return (
    <section aria-labelledby="up-h" data-testid="upgrade">
      <h2 id="up-h">
        Upgrade {u.id}: revision {u.fromRevision ?? '—'} → {u.toRevision} <StateBadge value={u.state} />
      </h2>
      <p className="muted" role="status">
        {done} of {u.nodes.length} nodes done{u.message ? ` — ${u.message}` : ''}
        {u.failedNode ? ` (stopped at ${u.failedNode})` : ''}
      </p>
      {actions.length > 0 && (
        <div className="row">
          {actions.map((a) => (
            <button
              key={a.verb}
              type="button"
              className={a.verb === 'cancel' ? 'danger' : 'secondary'}
              disabled={act.isPending}
              onClick={() => (!a.confirm || confirm(a.confirm)) && act.mutate(a.verb)}
            >
              {a.label}
            </button>
          ))}
        </div>
      )}
      <ErrorBox error={act.error} title="The upgrade did not change" />
      <UpgradeTimeline nodes={u.nodes} startedAt={u.startedAt} active={['Staging', 'Rolling', 'Paused'].includes(u.state)} />
      <div className="table-wrap">
        <div className="table-scroll">
          <table data-testid="upgrade-nodes">
            <thead>
              <tr>
                {['host', 'role', 'change', 'phase', 'steps', 'message'].map((h) => (
                  <th key={h} scope="col">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {u.nodes.map((n) => (
                <tr key={n.host} data-row={n.host}>
                  <td>{n.host}</td>
                  <td>{n.role}</td>
                  <td title={n.reasons.join(', ')}>{n.change}</td>
                  <td>
                    <StateBadge value={n.phase} />
                  </td>
                  <td className="steps">
                    {nodeSteps(n).map((st) => (
                      <span key={st.key} data-step={st.key}>
                        {st.label} <time dateTime={st.at}>{clock(st.at)}</time>
                      </span>
                    ))}
                  </td>
                  <td>{n.message ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </section>
  );
}
