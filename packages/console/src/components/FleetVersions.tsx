import type { FleetVersion } from '@edgeplane/protocol';
import { Link } from '../lib/router';
import { Empty } from './ui';
import './fleet.css';

function VersionTable({ title, rows, param }: { title: string; rows: FleetVersion[]; param: string }) {
  const max = Math.max(1, ...rows.map((r) => r.nodes));
  return (
    <div>
      <h3>{title}</h3>
      {rows.length === 0 ? (
        <Empty>No cluster node reports one yet.</Empty>
      ) : (
        <table className="versions" data-testid={`versions-${param}`}>
          <thead>
            <tr>
              <th scope="col">{param === 'osImage' ? 'image' : 'version'}</th>
              <th scope="col" className="num">
                nodes
              </th>
              <th scope="col">clusters</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const all = `/clusters?${param}=${encodeURIComponent(r.key)}`;
              return (
                <tr key={r.key} data-key={r.key}>
                  <th scope="row" title={r.key}>
                    <code>{r.label}</code>
                  </th>
                  <td className="num">
                    <span className="bar" style={{ width: `${Math.max(2, (60 * r.nodes) / max)}px` }} />
                    <span data-testid="nodes">{r.nodes.toLocaleString()}</span>
                  </td>
                  <td>
                    {r.clusterNames.slice(0, 3).map((c, i) => (
                      <span key={c}>
                        {i > 0 && ', '}
                        <Link to={`/clusters/${encodeURIComponent(c)}`}>{c}</Link>
                      </span>
                    ))}
                    {r.clusters > 3 && ', …'}{' '}
                    <Link to={all} className="all" data-testid="clusters">
                      {r.clusters === 1 ? 'in the list' : `all ${r.clusters.toLocaleString()}`}
                    </Link>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** The OS images and Kubernetes versions cluster nodes report running, with how many nodes on each and which clusters. */
export function FleetVersions({ versions }: { versions: { os: FleetVersion[]; kubernetes: FleetVersion[] } }) {
  return (
    <div className="fleet-versions">
      <VersionTable title="OS images" rows={versions.os} param="osImage" />
      <VersionTable title="Kubernetes versions" rows={versions.kubernetes} param="kubernetesVersion" />
    </div>
  );
}
