import type { HostOsRolloutStatus } from '@edgeplane/protocol';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, formatValue, type Resource, request } from '../lib/api';
import { useAuth } from '../lib/auth';
import { canAssignOsProfile, canRemoveOsProfile, clusterOfHost } from '../lib/host-rules';
import { isOsOnly, shortDigest } from '../lib/profiles';
import { Link } from '../lib/router';
import { ErrorBox, StateBadge } from './ui';

interface OsProfileRef {
  name: string;
  revision?: number;
}

function Digest({ value }: { value?: string }) {
  return value ? <code title={value}>{shortDigest(value)}</code> : <>—</>;
}

/**
 * Assign, change or remove the host's OS profile (EdgeHost spec.osProfile) with a merge patch. Only
 * OS-only profiles are offered; the revision is always sent, so the host moves exactly where chosen.
 * Offered only where the server accepts it (lib/host-rules.ts); any other refusal is shown as is.
 */
function OsProfileForm({ host, current, onDone }: { host: string; current?: OsProfileRef; onDone(): void }) {
  const qc = useQueryClient();
  // Same key as the cluster wizard's list: one cached copy, kept live by the watch.
  const profiles = useQuery({ queryKey: ['list', 'clusterprofiles', { all: true }], queryFn: () => api.list('clusterprofiles', { limit: 1000 }) });
  const osOnly = (profiles.data?.items ?? []).filter((p) => isOsOnly(p.spec));
  const [name, setName] = useState(current?.name ?? '');
  const [revision, setRevision] = useState<number>();
  const revs = useQuery({
    queryKey: ['revisions', name],
    queryFn: () => request<{ items: { revision: number }[] }>('GET', `/api/v1/clusterprofiles/${encodeURIComponent(name)}/revisions`),
    enabled: !!name,
  });
  const numbers = (revs.data?.items ?? []).map((r) => r.revision).sort((a, b) => b - a);
  // Default: the revision the host is pinned to for its own profile, else the latest.
  const chosen = revision ?? (name === current?.name && current.revision ? current.revision : numbers[0]);
  const assign = useMutation({
    mutationFn: (ref: OsProfileRef) => api.patch('edgehosts', host, { spec: { osProfile: ref } }),
    onSuccess: (obj) => {
      qc.setQueryData(['get', 'edgehosts', host], obj);
      void qc.invalidateQueries({ queryKey: ['list', 'edgehosts'] });
      onDone();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (name && chosen) assign.mutate({ name, revision: chosen });
  };
  return (
    <form className="form" onSubmit={submit} aria-label="Assign OS profile">
      <div className="row">
        <div className="field">
          <label htmlFor="os-profile">OS profile</label>
          <select
            id="os-profile"
            value={name}
            required
            onChange={(e) => {
              setName(e.target.value);
              setRevision(undefined);
            }}
          >
            <option value="">choose…</option>
            {osOnly.map((p) => (
              <option key={p.metadata.name} value={p.metadata.name}>
                {p.metadata.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="os-revision">Revision</label>
          <select id="os-revision" value={chosen ?? ''} required disabled={!name || revs.isPending} onChange={(e) => setRevision(Number(e.target.value))}>
            {numbers.map((n, i) => (
              <option key={n} value={n}>
                {n}
                {i === 0 ? ' (latest)' : ''}
              </option>
            ))}
          </select>
        </div>
      </div>
      {profiles.isSuccess && osOnly.length === 0 && (
        <p className="muted">No host OS profiles yet: create a cluster profile with only an OS layer (no kubernetes) first.</p>
      )}
      <div className="row">
        <button type="submit" disabled={assign.isPending || !name || !chosen}>
          {assign.isPending ? 'Assigning…' : current ? 'Save OS profile' : 'Assign'}
        </button>
        <button type="button" className="secondary" onClick={onDone}>
          Cancel
        </button>
      </div>
      <ErrorBox error={assign.error} title="OS profile not assigned" />
    </form>
  );
}

/**
 * The host's OS: what status.os derives (desired image from spec.os against what the agent's os
 * manager reports), live through the watch like the rest of the host page; and for roles that may
 * update hosts, the host OS profile assignment.
 */
export function HostOs({ host }: { host: Resource }) {
  const { can } = useAuth();
  const qc = useQueryClient();
  const [editing, setEditing] = useState(false);
  const name = host.metadata.name;
  const os = host.status.os as HostOsRolloutStatus | undefined;
  const ref = host.spec.osProfile as OsProfileRef | undefined;
  const cluster = clusterOfHost(host);
  // The server refuses an OS profile on a cluster node or an unapproved host: no button for it then.
  const assignable = canAssignOsProfile(host);
  const remove = useMutation({
    mutationFn: () => api.patch('edgehosts', name, { spec: { osProfile: null } }),
    onSuccess: (obj) => {
      qc.setQueryData(['get', 'edgehosts', name], obj);
      void qc.invalidateQueries({ queryKey: ['list', 'edgehosts'] });
    },
  });
  const source = os?.profile ? (
    <Link to={`/profiles/${encodeURIComponent(os.profile)}`}>{`${os.profile} revision ${os.revision}`}</Link>
  ) : cluster ? (
    <>
      cluster <Link to={`/clusters/${encodeURIComponent(cluster)}`}>{cluster}</Link>
    </>
  ) : (
    'spec.os'
  );
  return (
    <section className="card" aria-labelledby="os-h" data-testid="host-os">
      <h2 id="os-h">OS</h2>
      {os ? (
        <dl>
          <dt>Profile</dt>
          <dd data-testid="os-profile">{source}</dd>
          <dt>Image</dt>
          {/* A pinned reference ends in its digest, shown below: the repository is what a person reads. */}
          <dd title={os.image}>{os.image.split('@')[0]}</dd>
          <dt>Desired digest</dt>
          <dd data-testid="os-desired">
            <Digest value={os.desiredDigest} />
          </dd>
          <dt>Running digest</dt>
          <dd data-testid="os-running">
            <Digest value={os.digest} />
          </dd>
          <dt>Booted slot</dt>
          <dd data-testid="os-booted">{formatValue(os.bootedSlot)}</dd>
          <dt>Active slot</dt>
          <dd data-testid="os-active">{formatValue(os.activeSlot)}</dd>
          <dt>Phase</dt>
          <dd data-testid="os-phase">{os.phase ? <StateBadge value={os.phase} /> : 'not reported'}</dd>
          <dt>Up to date</dt>
          <dd data-testid="os-uptodate">{formatValue(os.upToDate)}</dd>
          <dt>Message</dt>
          <dd data-testid="os-message">{formatValue(os.message)}</dd>
        </dl>
      ) : (
        <p className="muted" data-testid="os-none">
          {cluster
            ? `No OS image is set for this node yet: it comes from the profile of cluster ${cluster}.`
            : 'No OS image is managed on this host. A host OS profile keeps its OS current with A/B upgrades.'}
        </p>
      )}
      {can('edgehosts', 'update') &&
        (editing && assignable ? (
          <OsProfileForm host={name} current={ref} onDone={() => setEditing(false)} />
        ) : (
          (assignable || canRemoveOsProfile(host)) && (
            <div className="row">
              {assignable && (
                <button type="button" className="small" onClick={() => setEditing(true)}>
                  {ref ? 'Change OS profile…' : 'Assign OS profile…'}
                </button>
              )}
              {ref && (
                <button
                  type="button"
                  className="danger small"
                  disabled={remove.isPending}
                  onClick={() => {
                    if (confirm(`Remove OS profile ${ref.name} from ${name}? The host keeps the image it runs; nothing manages its OS any more.`))
                      remove.mutate();
                  }}
                >
                  Remove OS profile
                </button>
              )}
            </div>
          )
        ))}
      {!assignable && !ref && can('edgehosts', 'update') && (
        <p className="muted" data-testid="os-why-not">
          {cluster
            ? `A cluster node takes its OS from the profile of cluster ${cluster}; to manage it with a host OS profile, remove it from the cluster first.`
            : 'A host OS profile can be assigned once the host is approved.'}
        </p>
      )}
      <ErrorBox error={remove.error} title="OS profile not removed" />
    </section>
  );
}
