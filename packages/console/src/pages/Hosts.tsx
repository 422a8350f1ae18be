import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useMemo, useState } from 'react';
import { ClaimPairing } from '../components/ClaimPairing';
import { ResourceTable } from '../components/ResourceTable';
import { ErrorBox } from '../components/ui';
import { api, type Resource } from '../lib/api';
import { useAuth } from '../lib/auth';
import { canApprove, canApproveKey, canReject, canRejectKey } from '../lib/host-rules';
import { useResourceAction } from '../lib/mutations';
import { navigate, useLocation } from '../lib/router';

const STATES = ['pending-approval', 'ready', 'in-use', 'rejected', 'pre-registered'];

/** Approve / reject buttons for a pending host or key change, shown only to roles that may use them. */
export function HostActions({ host }: { host: Resource }) {
  const { can } = useAuth();
  const act = useResourceAction('edgehosts');
  // Which hosts clusters depend on (appliances, VM nodes): one cached list for every row, kept live by the watch.
  const clusters = useQuery({
    queryKey: ['list', 'clusters', { all: true }],
    queryFn: () => api.listAll('clusters'),
    enabled: can('clusters', 'list'),
  });
  const name = host.metadata.name;
  const buttons: { verb: string; label: string; body?: unknown }[] = [];
  const pendingKey = host.status.pendingKeyFingerprint as string | undefined;
  // Only what the server accepts in this state (lib/host-rules.ts). A pending key change is decided
  // on its own: approving binds the host to exactly the key shown here (its fingerprint goes with
  // the request), refusing drops it and leaves the host as it is.
  if (canApprove(host)) buttons.push({ verb: 'approve', label: 'Approve' });
  if (canApproveKey(host)) buttons.push({ verb: 'approve-key', label: 'Approve new key', body: { fingerprint: pendingKey } });
  if (canRejectKey(host)) buttons.push({ verb: 'reject-key', label: 'Refuse new key' });
  if (canReject(host, clusters.data?.items)) buttons.push({ verb: 'reject', label: 'Reject' });
  const allowed = buttons.filter((b) => can('edgehosts', b.verb));
  if (allowed.length === 0) return null;
  return (
    <span className="row">
      {allowed.map((b) => (
        <button
          key={b.verb}
          type="button"
          className={b.verb === 'reject' ? 'danger small' : 'small'}
          aria-label={`${b.label} ${name}`}
          disabled={act.isPending}
          onClick={() => {
            if (b.verb === 'reject' && !confirm(`Reject ${name}? Its agent is disconnected and may not register again.`)) return;
            if (
              b.verb === 'approve-key' &&
              !confirm(`Bind ${name} to the new device key ${pendingKey?.slice(0, 16)}…? Check it against the device first; the current key is cut off.`)
            )
              return;
            act.mutate({ name, verb: b.verb, body: b.body });
          }}
        >
          {b.label}
        </button>
      ))}
      {act.error && <ErrorBox error={act.error} title={`Could not update ${name}`} />}
    </span>
  );
}

export function Hosts() {
  const { can } = useAuth();
  const { query } = useLocation();
  const [selector, setSelector] = useState(query.get('labelSelector') ?? '');
  const [siteText, setSiteText] = useState(query.get('site') ?? '');
  const applied = query.get('labelSelector') ?? '';
  const site = query.get('site') ?? '';
  const state = query.get('state') ?? '';
  const connectivity = query.get('connectivity') ?? '';
  const setParams = (values: Record<string, string>) => {
    const q = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(values)) {
      if (v) q.set(k, v);
      else q.delete(k);
    }
    navigate(`/hosts${q.toString() ? `?${q}` : ''}`, true);
  };
  const setParam = (k: string, v: string) => setParams({ [k]: v });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setParams({ labelSelector: selector.trim(), site: siteText.trim() });
  };
  // Filtered by the server (a field selector on indexed columns), so a filter holds across all pages.
  // The site is spec.site (from the registration token or the host), not a label.
  const fieldSelector = [site && `spec.site=${site}`, state && `status.state=${state}`, connectivity && `status.connectivity=${connectivity}`]
    .filter(Boolean)
    .join(',');
  // The same filter over loaded rows drops a host that stops matching through a live change (approved, went offline).
  const rowFilter = useMemo(
    () =>
      site || state || connectivity
        ? (r: Resource) => (!site || r.spec.site === site) && (!state || r.status.state === state) && (!connectivity || r.status.connectivity === connectivity)
        : undefined,
    [site, state, connectivity],
  );
  return (
    <>
      <h1>Edge hosts</h1>
      {can('edgehosts', 'create') && <ClaimPairing />}
      <div className="filters">
        <search className="row">
          <form onSubmit={submit} className="row" aria-label="Filter hosts">
            <label htmlFor="selector">Label selector</label>
            <input id="selector" placeholder="rack=r7,tier!=test" value={selector} onChange={(e) => setSelector(e.target.value)} />
            <label htmlFor="site">Site</label>
            <input id="site" placeholder="berlin" value={siteText} onChange={(e) => setSiteText(e.target.value)} />
            <button type="submit" className="secondary">
              Apply
            </button>
          </form>
        </search>
        <label htmlFor="state">State</label>
        <select id="state" value={state} onChange={(e) => setParam('state', e.target.value)}>
          <option value="">any</option>
          {STATES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <label htmlFor="connectivity">Connectivity</label>
        <select id="connectivity" value={connectivity} onChange={(e) => setParam('connectivity', e.target.value)}>
          <option value="">any</option>
          <option>online</option>
          <option>offline</option>
          <option>unknown</option>
        </select>
      </div>
      <ResourceTable
        plural="edgehosts"
        labelSelector={applied || undefined}
        fieldSelector={fieldSelector || undefined}
        rowFilter={rowFilter}
        rowLink={(r) => `/hosts/${encodeURIComponent(r.metadata.name)}`}
        actions={(r) => <HostActions host={r} />}
        emptyText={
          applied || site || state || connectivity
            ? 'No hosts match these filters.'
            : 'No edge hosts yet. Create a registration token and boot a device with it to see it here.'
        }
      />
    </>
  );
}
