import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, type Resource, request } from '../lib/api';
import { HostPicker, type NodeRole } from './HostPicker';
import { ErrorBox, StateBadge } from './ui';

type Role = NodeRole;
interface Plan {
  fromRevision?: number;
  toRevision: number;
  nodes: { host: string; role: Role; change: string; reasons: string[]; joins?: boolean }[];
  removed: string[];
}

/**
 * Day-2 change of a cluster: another profile revision (upgrade) and/or nodes added or removed
 * (scale). The change plan (POST /api/v1/clusters/<name>/plan, a dry run) is always shown first;
 * only then can the person apply it, as a merge patch of spec.profile and spec.nodes.
 */
export function ClusterChange({ cluster, onDone }: { cluster: Resource; onDone(): void }) {
  const qc = useQueryClient();
  const name = cluster.metadata.name;
  const profile = cluster.spec.profile as { name: string; revision: number };
  const current = (cluster.spec.nodes ?? []) as { host: string; role: Role }[];
  const virtualized = cluster.spec.type === 'virtualized';
  const revisions = useQuery({
    queryKey: ['revisions', profile.name],
    queryFn: () =>
      request<{ items: { revision: number; createdAt: string }[] }>('GET', `/api/v1/clusterprofiles/${encodeURIComponent(profile.name)}/revisions`),
  });
  const hosts = useQuery({
    queryKey: ['list', 'edgehosts', { picker: 'ready' }],
    queryFn: () => api.listAll('edgehosts', { fieldSelector: 'status.state=ready' }),
    enabled: cluster.spec.type !== 'virtualized',
  });
  const [revision, setRevision] = useState(profile.revision);
  const [removed, setRemoved] = useState<Set<string>>(new Set());
  const [added, setAdded] = useState<Record<string, Role | ''>>({});
  const [plan, setPlan] = useState<Plan>();
  const next = () => ({
    ...cluster.spec,
    profile: { name: profile.name, revision },
    nodes: [
      ...current.filter((n) => !removed.has(n.host)),
      ...Object.entries(added)
        .filter(([, r]) => r)
        .map(([host, role]) => ({ host, role })),
    ],
  });
  const dryRun = useMutation({
    mutationFn: () => request<Plan>('POST', `/api/v1/clusters/${encodeURIComponent(name)}/plan`, { spec: next() }),
    onSuccess: setPlan,
  });
  const apply = useMutation({
    mutationFn: () => api.patch('clusters', name, { spec: { profile: { name: profile.name, revision }, nodes: next().nodes } }),
    onSuccess: (c) => {
      qc.setQueryData(['get', 'clusters', name], c);
      void qc.invalidateQueries({ queryKey: ['list', 'edgehosts'] });
      onDone();
    },
  });
  // Any edit makes the shown plan stale: it must be asked for again.
  const edit = (fn: () => void) => {
    fn();
    setPlan(undefined);
    dryRun.reset();
  };
  const free = (hosts.data?.items ?? []).filter((h) => !h.metadata.annotations?.['edgeplane.io/cluster'] && !current.some((n) => n.host === h.metadata.name));
  const changed = revision !== profile.revision || removed.size > 0 || Object.values(added).some(Boolean);
  return (
    <section className="card" aria-labelledby="chg-h">
      <h2 id="chg-h">Upgrade or scale {name}</h2>
      <div className="field">
        <label htmlFor="chg-rev">Profile revision ({profile.name})</label>
        <select id="chg-rev" value={revision} onChange={(e) => edit(() => setRevision(Number(e.target.value)))}>
          {(revisions.data?.items ?? [{ revision: profile.revision }]).map((r) => (
            <option key={r.revision} value={r.revision}>
              revision {r.revision}
              {r.revision === profile.revision ? ' (current)' : ''}
            </option>
          ))}
        </select>
      </div>
      {/* A virtualized cluster's nodes are VMs on its appliance (spec.nodes stays empty): hosts are not added or removed here. */}
      {virtualized ? (
        <p className="muted">The nodes of this virtualized cluster are VMs on appliance {cluster.spec.appliance}: change its VMs in the cluster manifest.</p>
      ) : (
        <fieldset>
          <legend>Nodes</legend>
          {current.map((n) => (
            <div key={n.host} className="field check">
              <input
                id={`rm-${n.host}`}
                type="checkbox"
                checked={removed.has(n.host)}
                onChange={(e) =>
                  edit(() => {
                    const s = new Set(removed);
                    if (e.target.checked) s.add(n.host);
                    else s.delete(n.host);
                    setRemoved(s);
                  })
                }
              />
              <label htmlFor={`rm-${n.host}`}>
                Remove {n.host} ({n.role})
              </label>
            </div>
          ))}
          {free.length > 0 && (
            <>
              <p className="muted">Add ready hosts that are in no cluster:</p>
              <HostPicker hosts={free} chosen={added} onChange={(h, r) => edit(() => setAdded({ ...added, [h]: r }))} noneLabel="not added" idPrefix="add" />
            </>
          )}
        </fieldset>
      )}
      <div className="row">
        <button type="button" className="secondary" disabled={!changed || dryRun.isPending} onClick={() => dryRun.mutate()}>
          Show plan
        </button>
        <button type="button" className="secondary" onClick={onDone}>
          Close
        </button>
      </div>
      <ErrorBox error={dryRun.error} title="This change is not possible" />
      {plan && (
        <div data-testid="plan">
          <h3>
            Plan: revision {plan.fromRevision ?? '—'} → {plan.toRevision}
          </h3>
          <table>
            <thead>
              <tr>
                {['host', 'role', 'change', 'why'].map((h) => (
                  <th key={h} scope="col">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {plan.nodes.map((n) => (
                <tr key={n.host} data-row={n.host}>
                  <td>{n.host}</td>
                  <td>{n.role}</td>
                  <td>
                    <StateBadge value={n.change} />
                  </td>
                  <td>{n.reasons.join(', ') || '—'}</td>
                </tr>
              ))}
              {plan.removed.map((h) => (
                <tr key={h} data-row={h}>
                  <td>{h}</td>
                  <td>—</td>
                  <td>
                    <StateBadge value="removed" />
                  </td>
                  <td>drained, removed from Kubernetes and reset to ready</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted">Disruptive changes (repave, reboot) take nodes down one at a time within the cluster's upgrade strategy.</p>
          <button type="button" disabled={apply.isPending} onClick={() => apply.mutate()}>
            Apply this plan
          </button>
          <ErrorBox error={apply.error} title="The change was not applied" />
        </div>
      )}
    </section>
  );
}
