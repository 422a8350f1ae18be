import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { ClusterChange } from '../components/ClusterChange';
import { ObjectEvents } from '../components/ObjectEvents';
import { UpgradeProgress } from '../components/UpgradeProgress';
import { ErrorBox, Loading, StateBadge } from '../components/ui';
import { ApiError, api, formatValue, tokenStore } from '../lib/api';
import { useAuth } from '../lib/auth';
import { Link } from '../lib/router';

interface NodeStatus {
  host: string;
  role: string;
  phase: string;
  osImageDigest?: string;
  bootedSlot?: string;
  kubernetesVersion?: string;
  ready: boolean;
  message?: string;
}
interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

async function downloadKubeconfig(name: string): Promise<void> {
  const res = await fetch(`/api/v1/clusters/${encodeURIComponent(name)}/kubeconfig`, { headers: { authorization: `Bearer ${tokenStore.get()}` } });
  if (!res.ok) {
    const e = ((await res.json().catch(() => ({}))) as { error?: { code: string; message: string } }).error;
    throw new ApiError(res.status, e?.code ?? 'Unknown', e?.message ?? `HTTP ${res.status}`);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = `${name}.kubeconfig`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A cluster: phase, nodes (role, phase, slot, image, version, Ready), conditions, kubeconfig, events; live through the watch. */
export function ClusterDetail({ name }: { name: string }) {
  const { can } = useAuth();
  const q = useQuery({ queryKey: ['get', 'clusters', name], queryFn: () => api.get('clusters', name) });
  const [error, setError] = useState<unknown>();
  const [changing, setChanging] = useState(false);
  if (q.isPending) return <Loading what={`cluster ${name}`} />;
  if (q.error) return <ErrorBox error={q.error} title={`Could not load cluster ${name}`} />;
  const c = q.data;
  const nodes = (c.status.nodes ?? []) as NodeStatus[];
  const conditions = (c.status.conditions ?? []) as Condition[];
  return (
    <>
      <p>
        <Link to="/clusters">← Clusters</Link>
      </p>
      <h1>
        {name} <StateBadge value={c.status.phase ?? 'Pending'} />
      </h1>
      <div className="row">
        {can('clusters', 'update') && !changing && (
          <button type="button" onClick={() => setChanging(true)}>
            Upgrade or scale…
          </button>
        )}
        {c.status.kubeconfigAvailable && can('clusters', 'kubeconfig') && (
          <button type="button" className="secondary" onClick={() => downloadKubeconfig(name).catch(setError)}>
            Download kubeconfig
          </button>
        )}
      </div>
      <ErrorBox error={error} title="No kubeconfig" />
      {changing && <ClusterChange cluster={c} onDone={() => setChanging(false)} />}
      <UpgradeProgress cluster={c} />
      <div className="cards">
        <section className="card" aria-labelledby="c-sum">
          <h2 id="c-sum">Cluster</h2>
          <dl>
            <dt>Profile</dt>
            <dd>
              {c.spec.profile?.name} revision {c.spec.profile?.revision}
            </dd>
            <dt>Endpoint</dt>
            <dd>{formatValue(c.status.controlPlaneEndpoint ?? c.spec.controlPlaneEndpoint)}</dd>
            <dt>Pod / service CIDR</dt>
            <dd>
              {c.spec.podCidr} / {c.spec.serviceCidr}
            </dd>
            <dt>Running revision</dt>
            <dd>{formatValue(c.status.profileRevision)}</dd>
            <dt>Observed generation</dt>
            <dd>
              {formatValue(c.status.observedGeneration)} of {c.metadata.generation as number}
            </dd>
          </dl>
        </section>
        <section className="card" aria-labelledby="c-cond">
          <h2 id="c-cond">Conditions</h2>
          {conditions.length === 0 ? (
            <p className="muted">None reported yet.</p>
          ) : (
            <dl>
              {conditions.map((k) => (
                <div key={k.type} style={{ display: 'contents' }}>
                  <dt>{k.type}</dt>
                  <dd>
                    <StateBadge value={k.status} /> {k.reason} {k.message ? `— ${k.message}` : ''}
                  </dd>
                </div>
              ))}
            </dl>
          )}
        </section>
      </div>
      <h2>Nodes</h2>
      <div className="table-wrap">
        <div className="table-scroll" data-testid="nodes">
          <table>
            <thead>
              <tr>
                {['host', 'role', 'phase', 'ready', 'slot', 'image', 'kubernetes', 'message'].map((h) => (
                  <th key={h} scope="col">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {(nodes.length ? nodes : (c.spec.nodes ?? []).map((n: { host: string; role: string }) => ({ ...n, phase: 'Pending', ready: false }))).map(
                (n: NodeStatus) => (
                  <tr key={n.host} data-row={n.host}>
                    <td>
                      <Link to={`/hosts/${encodeURIComponent(n.host)}`}>{n.host}</Link>
                    </td>
                    <td>{n.role}</td>
                    <td>
                      <StateBadge value={n.phase} />
                    </td>
                    <td>{n.ready ? 'yes' : 'no'}</td>
                    <td>{formatValue(n.bootedSlot)}</td>
                    <td title={n.osImageDigest}>{n.osImageDigest ? `${n.osImageDigest.slice(0, 19)}…` : '—'}</td>
                    <td>{formatValue(n.kubernetesVersion)}</td>
                    <td>{formatValue(n.message)}</td>
                  </tr>
                ),
              )}
            </tbody>
          </table>
        </div>
      </div>
      <h2>Events</h2>
      <ObjectEvents object={c} emptyText="No events for this cluster yet." />
    </>
  );
}
