import { ROLLOUT_DONE, type RolloutPhase, type RolloutSpec, type RolloutStatus } from '@edgeplane/protocol';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { BatchOutcomes } from '../components/BatchOutcomes';
import { ResourceTable } from '../components/ResourceTable';
import { RolloutSiteMap } from '../components/RolloutSiteMap';
import { RolloutTimeline } from '../components/RolloutTimeline';
import { ErrorBox, Loading, StateBadge } from '../components/ui';
import { api, formatValue } from '../lib/api';
import { useAuth } from '../lib/auth';
import { useResourceAction } from '../lib/mutations';
import { batchViews, failureLimit } from '../lib/rollout-progress';
import { Link } from '../lib/router';

const SHOWN = 500;

/**
 * A rollout: what it moves where, its batches as a timeline and against their thresholds, its sites
 * on the map by state, every target cluster's state, and
 * pause / resume / approve / abort for roles that may use them. Actions only set control fields;
 * the rollout controller acts on them, and the page follows through the watch stream.
 */
export function RolloutDetail({ name }: { name: string }) {
  const { can } = useAuth();
  const q = useQuery({ queryKey: ['get', 'rollouts', name], queryFn: () => api.get('rollouts', name) });
  const act = useResourceAction('rollouts');
  const [filter, setFilter] = useState('');
  if (q.isPending) return <Loading what={`rollout ${name}`} />;
  if (q.error) return <ErrorBox error={q.error} title={`Could not load rollout ${name}`} />;
  const r = q.data;
  const s = r.status as Partial<RolloutStatus>;
  const phase = (s.phase ?? 'Pending') as RolloutPhase;
  const open = !ROLLOUT_DONE.includes(phase);
  const actions = [
    {
      verb: 'approve',
      label: `Approve batch ${(s.currentBatch ?? 0) + 1}`,
      show: phase === 'AwaitingApproval' && (s.approvedBatch ?? -1) < (s.currentBatch ?? 0),
    },
    { verb: 'pause', label: 'Pause', show: open && !s.paused },
    { verb: 'resume', label: 'Resume', show: open && !!s.paused },
    { verb: 'abort', label: 'Abort', show: open && !s.abortRequested },
  ].filter((a) => a.show && can('rollouts', a.verb));
  const clusters = (s.clusters ?? []).filter((c) => !filter || c.state === filter);
  const spec = r.spec as unknown as RolloutSpec;
  const batches = batchViews(spec, s);
  return (
    <>
      <p>
        <Link to="/rollouts">← Rollouts</Link>
      </p>
      <h1>
        {name} <StateBadge value={phase} />
      </h1>
      <p data-testid="rollout-summary">
        Moves {spec.targets.names ? `clusters ${spec.targets.names.join(', ')}` : ''}
        {spec.targets.names && spec.targets.selector ? ' and ' : ''}
        {spec.targets.selector ? `clusters matching ${spec.targets.selector}` : ''} to profile {spec.profile.name} revision {spec.profile.revision}
        {spec.strategy.requireApproval ? ', with approval before each batch after the first' : ''}.
        {s.paused ? ' Paused: no new cluster starts until it is resumed.' : ''}
        {s.abortRequested && open ? ' Abort requested: clusters upgrading now finish, no new one starts.' : ''}
        {s.message ? ` ${s.message}` : ''}
      </p>
      {actions.length > 0 && (
        <div className="row">
          {actions.map((a) => (
            <button
              key={a.verb}
              type="button"
              className={a.verb === 'abort' ? 'danger' : a.verb === 'approve' ? '' : 'secondary'}
              disabled={act.isPending}
              onClick={() =>
                (a.verb !== 'abort' || confirm(`Abort rollout ${name}? Clusters already upgraded stay on the new revision.`)) &&
                act.mutate({ name, verb: a.verb })
              }
            >
              {a.label}
            </button>
          ))}
        </div>
      )}
      <ErrorBox error={act.error} title={`Could not change rollout ${name}`} />
      <h2>Batches</h2>
      {(s.batches ?? []).length === 0 ? (
        <p className="muted">The batches are planned when the rollout starts.</p>
      ) : (
        <>
          <RolloutTimeline batches={batches} startedAt={s.startedAt} finishedAt={s.finishedAt} open={open} />
          <BatchOutcomes batches={batches} maxFailures={failureLimit(spec, s)} />
          <table data-testid="batches">
            <thead>
              <tr>
                {['batch', 'phase', 'clusters', 'succeeded', 'failed', 'approved'].map((h) => (
                  <th key={h} scope="col">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {(s.batches ?? []).map((b, i) => (
                <tr key={b.name} data-row={b.name} aria-current={i === s.currentBatch ? 'step' : undefined}>
                  <td>{b.name}</td>
                  <td>
                    <StateBadge value={b.phase} />
                  </td>
                  <td>{b.total}</td>
                  <td>{b.succeeded}</td>
                  <td>{b.failed}</td>
                  <td>{formatValue(b.approved)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <RolloutSiteMap clusters={s.clusters ?? []} />
      <h2>Clusters</h2>
      {(s.clusters ?? []).length === 0 ? (
        <p className="muted">No target clusters resolved yet.</p>
      ) : (
        <>
          <div className="filters">
            <label htmlFor="ro-state">State</label>
            <select id="ro-state" value={filter} onChange={(e) => setFilter(e.target.value)}>
              <option value="">any</option>
              {['pending', 'waiting-for-window', 'staging', 'upgrading', 'succeeded', 'failed', 'skipped'].map((v) => (
                <option key={v}>{v}</option>
              ))}
            </select>
          </div>
          <table data-testid="rollout-clusters">
            <thead>
              <tr>
                {['cluster', 'batch', 'site', 'state', 'from', 'next window', 'message'].map((h) => (
                  <th key={h} scope="col">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {clusters.slice(0, SHOWN).map((c) => (
                <tr key={c.name} data-row={c.name}>
                  <td>
                    <Link to={`/clusters/${encodeURIComponent(c.name)}`}>{c.name}</Link>
                  </td>
                  <td>{(s.batches ?? [])[c.batch]?.name ?? c.batch + 1}</td>
                  <td>{formatValue(c.site)}</td>
                  <td>
                    <StateBadge value={c.state} />
                  </td>
                  <td>{formatValue(c.fromRevision)}</td>
                  <td>{formatValue(c.nextWindowAt)}</td>
                  <td>{formatValue(c.message ?? c.reason)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {clusters.length > SHOWN && (
            <p className="muted">
              Showing {SHOWN} of {clusters.length}; filter by state to see the others.
            </p>
          )}
        </>
      )}
      <h2>Events</h2>
      <ResourceTable
        plural="events"
        fieldSelector={`involvedObject.kind=Rollout,involvedObject.name=${name}`}
        pageSize={100}
        emptyText="No events for this rollout yet."
      />
    </>
  );
}
