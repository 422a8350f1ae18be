import { ClusterPhase } from '@edgeplane/protocol';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useMemo, useState } from 'react';
import { HostPicker, type NodeRole } from '../components/HostPicker';
import { ResourceTable } from '../components/ResourceTable';
import { ErrorBox } from '../components/ui';
import { api, type Resource, request } from '../lib/api';
import { useAuth } from '../lib/auth';
import { isOsOnly } from '../lib/profiles';
import { Link, navigate, useLocation } from '../lib/router';

interface Variable {
  name: string;
  default?: string;
  description?: string;
  required?: boolean;
}
interface Revision {
  revision: number;
  spec: { variables?: Variable[] };
}

/** What the server refuses without a value (cluster.service.ts MissingVariable): required and no default. */
const mustGive = (v: Variable) => !!v.required && v.default === undefined;

/**
 * Create a native cluster: a profile revision, ready hosts that are in no cluster yet with a role each
 * (picked by site, hostname or id), an optional endpoint and the revision's variables, the ones
 * without a default marked and checked before anything is sent. The API validates the rest (odd
 * control planes, hosts free) and its messages are shown per field.
 */
function ClusterWizard({ onClose }: { onClose(): void }) {
  const qc = useQueryClient();
  const profiles = useQuery({ queryKey: ['list', 'clusterprofiles', { all: true }], queryFn: () => api.list('clusterprofiles', { limit: 1000 }) });
  const hosts = useQuery({
    queryKey: ['list', 'edgehosts', { picker: 'ready' }],
    queryFn: () => api.listAll('edgehosts', { fieldSelector: 'status.state=ready' }),
  });
  const [profile, setProfile] = useState('');
  const [revisionText, setRevisionText] = useState('');
  const [roles, setRoles] = useState<Record<string, NodeRole | ''>>({});
  const [values, setValues] = useState<Record<string, string>>({});
  const [missing, setMissing] = useState<string[]>([]);
  const create = useMutation({
    mutationFn: (body: unknown) => api.create('clusters', body),
    onSuccess: (c) => {
      void qc.invalidateQueries({ queryKey: ['list', 'clusters'] });
      navigate(`/clusters/${encodeURIComponent(c.metadata.name)}`);
    },
  });
  const free = (hosts.data?.items ?? []).filter((h: Resource) => h.status.state === 'ready' && !h.metadata.annotations?.['edgeplane.io/cluster']);
  const chosen = profiles.data?.items.find((p) => p.metadata.name === profile);
  const revision = Number(revisionText) || Number(chosen?.status.latestRevision) || 1;
  const rev = useQuery({
    queryKey: ['revision', profile, revision],
    queryFn: () => request<Revision>('GET', `/api/v1/clusterprofiles/${encodeURIComponent(profile)}/revisions/${revision}`),
    enabled: !!chosen,
    retry: false,
  });
  const variables = rev.data?.spec.variables ?? [];
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const absent = variables.filter((v) => mustGive(v) && !values[v.name]?.trim()).map((v) => v.name);
    setMissing(absent);
    if (absent.length) {
      document.getElementById(`var-${absent[0]}`)?.focus();
      return;
    }
    const nodes = Object.entries(roles)
      .filter(([, r]) => r)
      .map(([host, role]) => ({ host, role }));
    const endpoint = String(f.get('endpoint') ?? '').trim();
    // Only declared variables with a value: an empty field leaves the profile's default.
    const given = Object.fromEntries(variables.filter((v) => values[v.name]?.trim()).map((v) => [v.name, values[v.name].trim()]));
    create.mutate({
      metadata: { name: String(f.get('name') ?? '').trim() },
      spec: {
        type: 'native',
        profile: { name: profile, revision },
        nodes,
        ...(endpoint ? { controlPlaneEndpoint: endpoint } : {}),
        variables: given,
      },
    });
  };
  return (
    <form className="card form wide" onSubmit={submit} aria-label="Create cluster">
      <h2>Create cluster</h2>
      <div className="field">
        <label htmlFor="c-name">Name</label>
        <input id="c-name" name="name" required placeholder="berlin-shop-1" />
      </div>
      <div className="field">
        <label htmlFor="c-type">Type</label>
        <select id="c-type" name="type" defaultValue="native">
          <option value="native">Native: each host is a node</option>
        </select>
      </div>
      <div className="row">
        <div className="field">
          <label htmlFor="c-profile">Cluster profile</label>
          <select
            id="c-profile"
            value={profile}
            onChange={(e) => {
              setProfile(e.target.value);
              setMissing([]);
            }}
            required
          >
            <option value="">choose…</option>
            {profiles.data?.items.map((p) =>
              // A host OS profile has no Kubernetes: the API would refuse it (ProfileHasNoKubernetes).
              isOsOnly(p.spec) ? (
                <option key={p.metadata.name} value={p.metadata.name} disabled>
                  {p.metadata.name} (OS only: for hosts, not clusters)
                </option>
              ) : (
                <option key={p.metadata.name} value={p.metadata.name}>
                  {p.metadata.name} ({p.spec.layers?.kubernetes?.distribution} {p.spec.layers?.kubernetes?.version})
                </option>
              ),
            )}
          </select>
        </div>
        <div className="field">
          <label htmlFor="c-revision">Revision</label>
          <input
            id="c-revision"
            name="revision"
            type="number"
            min={1}
            value={revisionText}
            onChange={(e) => setRevisionText(e.target.value)}
            placeholder={chosen ? String(chosen.status.latestRevision ?? 1) : 'latest'}
          />
        </div>
      </div>
      {profiles.data?.items.every((p) => isOsOnly(p.spec)) && (
        <p className="muted">No cluster profiles with a Kubernetes layer yet: create one first (Cluster profiles).</p>
      )}
      {profiles.data?.items.some((p) => isOsOnly(p.spec)) && (
        <p className="muted">Profiles marked “OS only” are host OS profiles: assign them to a host on its page instead.</p>
      )}
      <fieldset>
        <legend>Nodes: ready hosts in no cluster</legend>
        {hosts.isPending && <p className="muted">Loading hosts…</p>}
        <ErrorBox error={hosts.error} title="Could not load the free hosts" />
        {free.length === 0 && hosts.isSuccess && <p className="muted">No free ready hosts. Approve hosts first.</p>}
        {free.length > 0 && (
          <HostPicker hosts={free} chosen={roles} onChange={(h, r) => setRoles((x) => ({ ...x, [h]: r }))} noneLabel="not in this cluster" idPrefix="role" />
        )}
      </fieldset>
      <div className="field">
        <label htmlFor="c-endpoint">Control plane endpoint (optional)</label>
        <input id="c-endpoint" name="endpoint" placeholder="https://10.0.0.10:6443 (default: the first control-plane node)" />
      </div>
      {chosen && (
        <fieldset data-testid="variables">
          <legend>
            Variables of {profile} revision {revision}
          </legend>
          <ErrorBox error={rev.error} title={`Could not read revision ${revision} of ${profile}`} />
          {rev.isSuccess && variables.length === 0 && <p className="muted">This revision declares no variables.</p>}
          {variables.map((v) => {
            const req = mustGive(v);
            const bad = missing.includes(v.name);
            return (
              <div className="field" key={v.name}>
                <label htmlFor={`var-${v.name}`}>
                  {v.name} {req ? <span className="required">(required)</span> : <span className="muted">(optional)</span>}
                </label>
                <input
                  id={`var-${v.name}`}
                  value={values[v.name] ?? ''}
                  aria-required={req}
                  aria-invalid={bad || undefined}
                  aria-describedby={`var-${v.name}-help`}
                  placeholder={v.default !== undefined ? `default: ${v.default}` : ''}
                  onChange={(e) => {
                    setValues((x) => ({ ...x, [v.name]: e.target.value }));
                    if (bad && e.target.value.trim()) setMissing((m) => m.filter((n) => n !== v.name));
                  }}
                />
                <small id={`var-${v.name}-help`} className={bad ? 'error-text' : 'muted'}>
                  {bad
                    ? `${profile} revision ${revision} has no default for ${v.name}: give a value.`
                    : (v.description ?? (v.default !== undefined ? `Leave empty for the default (${v.default}).` : ''))}
                </small>
              </div>
            );
          })}
        </fieldset>
      )}
      <div className="row">
        <button type="submit" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create cluster'}
        </button>
        <button type="button" className="secondary" onClick={onClose}>
          Cancel
        </button>
      </div>
      {missing.length > 0 && (
        <p className="error" role="alert">
          Not sent: the profile needs a value for {missing.join(', ')} (no default in revision {revision}).
        </p>
      )}
      <ErrorBox error={create.error} title="Cluster not created" />
    </form>
  );
}

const UPGRADING = new Set(['Staging', 'Rolling', 'Paused']);
const FILTERS = ['site', 'phase', 'kubernetesVersion', 'osImage', 'upgrading'];

export function Clusters() {
  const { can } = useAuth();
  const [open, setOpen] = useState(false);
  const { query } = useLocation();
  const site = query.get('site') ?? '';
  const phase = query.get('phase') ?? '';
  const kubernetesVersion = query.get('kubernetesVersion') ?? '';
  const osImage = query.get('osImage') ?? '';
  const upgrading = query.get('upgrading') === 'true';
  const setParam = (k: string, v: string) => {
    const q = new URLSearchParams(location.search);
    if (v) q.set(k, v);
    else q.delete(k);
    navigate(`/clusters${q.toString() ? `?${q}` : ''}`, true);
  };
  // Site and phase are filtered by the server (field selectors); the versions nodes report and a
  // running upgrade are not indexed, so they filter the rows as pages load (clusters are one per site at most).
  const fieldSelector = [site && `spec.site=${site}`, phase && `status.phase=${phase}`].filter(Boolean).join(',');
  const rowFilter = useMemo(() => {
    if (!site && !phase && !kubernetesVersion && !osImage && !upgrading) return undefined;
    return (r: Resource) => {
      const nodes = (r.status.nodes ?? []) as { kubernetesVersion?: string; osImageDigest?: string }[];
      return (
        (!site || r.spec.site === site) &&
        (!phase || (r.status.phase ?? 'Pending') === phase) &&
        (!kubernetesVersion || nodes.some((n) => n.kubernetesVersion === kubernetesVersion)) &&
        (!osImage || nodes.some((n) => n.osImageDigest === osImage)) &&
        (!upgrading || UPGRADING.has(r.status.upgrade?.state))
      );
    };
  }, [site, phase, kubernetesVersion, osImage, upgrading]);
  const active = FILTERS.filter((k) => query.get(k));
  return (
    <>
      <h1>Clusters</h1>
      {can('clusters', 'create') &&
        (open ? (
          <ClusterWizard onClose={() => setOpen(false)} />
        ) : (
          <button type="button" onClick={() => setOpen(true)}>
            Create cluster
          </button>
        ))}
      <div className="filters">
        <label htmlFor="cluster-phase">Phase</label>
        <select id="cluster-phase" value={phase} onChange={(e) => setParam('phase', e.target.value)}>
          <option value="">any</option>
          {ClusterPhase.options.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
        {active.length > 0 && (
          <span data-testid="cluster-filters">
            Showing clusters with {active.map((k) => `${k} ${query.get(k)}`).join(', ')} · <Link to="/clusters">all clusters</Link>
          </span>
        )}
      </div>
      <ResourceTable
        plural="clusters"
        fieldSelector={fieldSelector || undefined}
        rowFilter={rowFilter}
        rowLink={(r) => `/clusters/${encodeURIComponent(r.metadata.name)}`}
        emptyText={active.length ? 'No clusters match these filters.' : 'No clusters yet.'}
      />
    </>
  );
}
