import { useQuery } from '@tanstack/react-query';
import { Fragment, useState } from 'react';
import { ResourceTable } from '../components/ResourceTable';
import { ErrorBox, Loading } from '../components/ui';
import { toYaml, YamlDiff } from '../components/YamlDiff';
import { api, formatValue, request } from '../lib/api';
import { isOsOnly, shortDigest as short } from '../lib/profiles';
import { Link } from '../lib/router';

interface Revision {
  profile: string;
  revision: number;
  createdAt: string;
  spec: {
    layers?: {
      os?: { image?: string; digest?: string };
      kubernetes?: { distribution?: string; version?: string };
      network?: { cni?: string; version?: string };
      storage?: { csi?: string; version?: string };
      addons?: { name: string; chart?: { name: string; version: string } }[];
    };
    variables?: { name: string; default?: string; required?: boolean; description?: string }[];
  };
}

/** The layers of one revision, in words. */
function Layers({ rev }: { rev: Revision }) {
  const l = rev.spec.layers ?? {};
  const rows: [string, string][] = [
    ['OS image', l.os?.image ?? '—'],
    ['OS digest', short(l.os?.digest)],
    ['Kubernetes', l.kubernetes ? [l.kubernetes.distribution, l.kubernetes.version].filter(Boolean).join(' ') : 'none: a host OS profile (OS only)'],
    ['Network', l.network ? [l.network.cni, l.network.version].filter(Boolean).join(' ') : '—'],
    ['Storage', l.storage ? [l.storage.csi, l.storage.version].filter(Boolean).join(' ') : '—'],
    ['Add-ons', (l.addons ?? []).map((a) => (a.chart ? `${a.name} (${a.chart.name} ${a.chart.version})` : a.name)).join(', ') || '—'],
    [
      'Variables',
      (rev.spec.variables ?? []).map((v) => `${v.name}${v.required ? ' (required)' : v.default !== undefined ? ` = ${v.default}` : ''}`).join(', ') || '—',
    ],
  ];
  return (
    <dl data-testid="layers">
      {rows.map(([k, v]) => (
        <Fragment key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </Fragment>
      ))}
    </dl>
  );
}

/**
 * A cluster profile: the layers of its latest revision, every immutable revision, and a diff of the
 * specs (as YAML) of any two revisions, so an operator sees what an upgrade to a revision changes.
 */
export function ProfileDetail({ name }: { name: string }) {
  const q = useQuery({
    queryKey: ['revisions', name],
    queryFn: () => request<{ items: Revision[] }>('GET', `/api/v1/clusterprofiles/${encodeURIComponent(name)}/revisions`),
  });
  const profile = useQuery({ queryKey: ['get', 'clusterprofiles', name], queryFn: () => api.get('clusterprofiles', name) });
  const [from, setFrom] = useState<number>();
  const [to, setTo] = useState<number>();
  if (q.isPending || profile.isPending) return <Loading what={`profile ${name}`} />;
  if (profile.error) return <ErrorBox error={profile.error} title={`Could not load profile ${name}`} />;
  if (q.error) return <ErrorBox error={q.error} title={`Could not load the revisions of ${name}`} />;
  const revs = [...q.data.items].sort((a, b) => a.revision - b.revision);
  const latest = revs.at(-1);
  const toRev = revs.find((r) => r.revision === (to ?? latest?.revision));
  const fromRev = revs.find((r) => r.revision === (from ?? (revs.length > 1 ? revs[revs.length - 2].revision : latest?.revision)));
  const choose = (id: string, label: string, value: number | undefined, set: (n: number) => void) => (
    <>
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => set(Number(e.target.value))}>
        {revs.map((r) => (
          <option key={r.revision} value={r.revision}>
            revision {r.revision}
          </option>
        ))}
      </select>
    </>
  );
  return (
    <>
      <p>
        <Link to="/profiles">← Cluster profiles</Link>
      </p>
      <h1>
        {name} <span className="muted">revision {latest?.revision ?? '—'}</span>
      </h1>
      {profile.data.spec.description && <p>{String(profile.data.spec.description)}</p>}
      <div className="cards">
        <section className="card" aria-labelledby="layers-h">
          <h2 id="layers-h">Layers (revision {latest?.revision})</h2>
          {latest ? <Layers rev={latest} /> : <p className="muted">No revisions.</p>}
        </section>
        <section className="card" aria-labelledby="revs-h">
          <h2 id="revs-h">Revisions</h2>
          <div className="diff-scroll-x">
            <table data-testid="revisions">
              <thead>
                <tr>
                  <th scope="col">revision</th>
                  <th scope="col">created</th>
                  <th scope="col">kubernetes</th>
                  <th scope="col">os digest</th>
                </tr>
              </thead>
              <tbody>
                {[...revs].reverse().map((r) => (
                  <tr key={r.revision} data-row={r.revision}>
                    <td>{r.revision}</td>
                    <td>{formatValue(r.createdAt)}</td>
                    <td>{isOsOnly(r.spec) ? 'OS only' : (r.spec.layers?.kubernetes?.version ?? '—')}</td>
                    <td>
                      <code>{short(r.spec.layers?.os?.digest)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      </div>
      <section aria-labelledby="diff-h">
        <h2 id="diff-h">Compare revisions</h2>
        {revs.length < 2 ? (
          <p className="muted">Only one revision so far: changing the profile writes the next one, and you can compare them here.</p>
        ) : (
          <>
            <fieldset className="filters">
              <legend className="sr-only">Revisions to compare</legend>
              {choose('rev-from', 'From revision', fromRev?.revision, setFrom)}
              {choose('rev-to', 'To revision', toRev?.revision, setTo)}
            </fieldset>
            {fromRev && toRev && (
              <YamlDiff
                before={toYaml(fromRev.spec)}
                after={toYaml(toRev.spec)}
                beforeLabel={`revision ${fromRev.revision}`}
                afterLabel={`revision ${toRev.revision}`}
              />
            )}
          </>
        )}
      </section>
      {latest && isOsOnly(latest.spec) ? (
        <section aria-labelledby="use-h">
          <h2 id="use-h">Hosts using this OS profile</h2>
          <ResourceTable
            plural="edgehosts"
            rowFilter={(h) => h.spec.osProfile?.name === name}
            rowLink={(h) => `/hosts/${encodeURIComponent(h.metadata.name)}`}
            emptyText="No host uses this OS profile. Assign it on a host's page."
          />
        </section>
      ) : (
        <section aria-labelledby="use-h">
          <h2 id="use-h">Clusters using this profile</h2>
          <ResourceTable
            plural="clusters"
            rowFilter={(c) => c.spec.profile?.name === name}
            rowLink={(c) => `/clusters/${encodeURIComponent(c.metadata.name)}`}
            emptyText="No clusters use this profile."
          />
        </section>
      )}
    </>
  );
}
