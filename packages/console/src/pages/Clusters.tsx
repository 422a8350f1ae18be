import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { ResourceTable } from '../components/ResourceTable';
import { ErrorBox } from '../components/ui';
import { api, type Resource } from '../lib/api';
import { useAuth } from '../lib/auth';
import { isOsOnly } from '../lib/profiles';
import { navigate } from '../lib/router';

type Role = '' | 'control-plane' | 'worker';

/** Parses KEY=VALUE lines into the cluster's profile variables. */
function parseVariables(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (!line) continue;
    const i = line.indexOf('=');
    if (i < 1) throw new Error(`"${line}" is not KEY=VALUE`);
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/**
 * Create a native cluster: a profile revision, ready hosts that are in no cluster yet with a role each,
 * an optional endpoint and variables. The API validates (odd control planes, profile revision exists,
 * hosts free) and its messages are shown per field.
 */
function ClusterWizard({ onClose }: { onClose(): void }) {
  const qc = useQueryClient();
  const profiles = useQuery({ queryKey: ['list', 'clusterprofiles', { all: true }], queryFn: () => api.list('clusterprofiles', { limit: 1000 }) });
  const hosts = useQuery({
    queryKey: ['list', 'edgehosts', { wizard: true }],
    queryFn: () => api.list('edgehosts', { limit: 1000, fieldSelector: 'status.state=ready' }),
  });
  const [profile, setProfile] = useState('');
  const [roles, setRoles] = useState<Record<string, Role>>({});
  const [localError, setLocalError] = useState<string>();
  const create = useMutation({
    mutationFn: (body: unknown) => api.create('clusters', body),
    onSuccess: (c) => {
      void qc.invalidateQueries({ queryKey: ['list', 'clusters'] });
      navigate(`/clusters/${encodeURIComponent(c.metadata.name)}`);
    },
  });
  const free = (hosts.data?.items ?? []).filter((h: Resource) => h.status.state === 'ready' && !h.metadata.annotations?.['edgeplane.io/cluster']);
  const chosen = profiles.data?.items.find((p) => p.metadata.name === profile);
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setLocalError(undefined);
    const f = new FormData(e.currentTarget);
    let variables: Record<string, string>;
    try {
      variables = parseVariables(String(f.get('variables') ?? ''));
    } catch (err) {
      setLocalError((err as Error).message);
      return;
    }
    const nodes = Object.entries(roles)
      .filter(([, r]) => r)
      .map(([host, role]) => ({ host, role }));
    const endpoint = String(f.get('endpoint') ?? '').trim();
    create.mutate({
      metadata: { name: String(f.get('name') ?? '').trim() },
      spec: {
        type: 'native',
        profile: { name: profile, revision: Number(f.get('revision') || chosen?.status.latestRevision || 1) },
        nodes,
        ...(endpoint ? { controlPlaneEndpoint: endpoint } : {}),
        variables,
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
          <select id="c-profile" value={profile} onChange={(e) => setProfile(e.target.value)} required>
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
          <input id="c-revision" name="revision" type="number" min={1} placeholder={chosen ? String(chosen.status.latestRevision ?? 1) : 'latest'} />
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
        {free.length === 0 && !hosts.isPending && <p className="muted">No free ready hosts. Approve hosts first.</p>}
        {free.map((h) => (
          <div className="row" key={h.metadata.name}>
            <label htmlFor={`role-${h.metadata.name}`} className="node-name">
              {h.metadata.name} {h.spec.site ? `(${h.spec.site})` : ''}
            </label>
            <select
              id={`role-${h.metadata.name}`}
              value={roles[h.metadata.name] ?? ''}
              onChange={(e) => setRoles((r) => ({ ...r, [h.metadata.name]: e.target.value as Role }))}
            >
              <option value="">not in this cluster</option>
              <option value="control-plane">control plane</option>
              <option value="worker">worker</option>
            </select>
          </div>
        ))}
      </fieldset>
      <div className="field">
        <label htmlFor="c-endpoint">Control plane endpoint (optional)</label>
        <input id="c-endpoint" name="endpoint" placeholder="https://10.0.0.10:6443 (default: the first control-plane node)" />
      </div>
      <div className="field">
        <label htmlFor="c-vars">Variables (optional, KEY=VALUE per line)</label>
        <textarea id="c-vars" name="variables" rows={3} />
      </div>
      <div className="row">
        <button type="submit" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create cluster'}
        </button>
        <button type="button" className="secondary" onClick={onClose}>
          Cancel
        </button>
      </div>
      {localError && (
        <p className="error" role="alert">
          {localError}
        </p>
      )}
      <ErrorBox error={create.error} title="Cluster not created" />
    </form>
  );
}

export function Clusters() {
  const { can } = useAuth();
  const [open, setOpen] = useState(false);
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
      <ResourceTable plural="clusters" rowLink={(r) => `/clusters/${encodeURIComponent(r.metadata.name)}`} emptyText="No clusters yet." />
    </>
  );
}
