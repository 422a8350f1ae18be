import type { FleetSite, SiteHealth } from '@edgeplane/protocol';
import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { ResourceTable } from '../components/ResourceTable';
import { Empty, ErrorBox, Loading } from '../components/ui';
import { api, formatValue } from '../lib/api';
import { useAuth } from '../lib/auth';
import { HEALTH, HEALTH_ORDER, NO_REGION, siteDetail, useFleet } from '../lib/fleet';
import { Link, navigate, useLocation } from '../lib/router';
import '../components/fleet.css';

const MAX_ROWS = 500;

function HealthBadge({ health }: { health: SiteHealth }) {
  return (
    <span className="row" data-health={health}>
      <i className="health-dot" style={{ background: HEALTH[health].color }} /> {HEALTH[health].label}
    </span>
  );
}

/**
 * Which sites a URL asks for: by region label, health, name, and by having hosts of a connectivity
 * or state or clusters of a phase (what a region's cell in the fleet health grid opens).
 */
function siteFilter(query: URLSearchParams): (s: FleetSite) => boolean {
  const region = query.get('region');
  const health = query.get('health');
  const connectivity = query.get('connectivity');
  const state = query.get('state');
  const phase = query.get('phase');
  const upgrading = query.get('upgrading') === 'true';
  const text = query.get('q')?.toLowerCase();
  const unplaced = query.get('placed') === 'no';
  return (s) =>
    (!region || (s.region ?? NO_REGION) === region) &&
    (!health || s.health === health) &&
    (!connectivity || (s.hosts.byConnectivity[connectivity] ?? 0) > 0) &&
    (!state || (s.hosts.byState[state] ?? 0) > 0) &&
    (!phase || (s.clusters?.byPhase[phase] ?? 0) > 0) &&
    (!upgrading || (s.clusters?.upgrading ?? 0) > 0) &&
    (!text || s.name.toLowerCase().includes(text) || !!s.displayName?.toLowerCase().includes(text)) &&
    (!unplaced || s.latitude === undefined);
}

const FILTER_KEYS = ['region', 'health', 'connectivity', 'state', 'phase', 'upgrading', 'q', 'placed'];

/** Every site with its health and counts (one fleet summary request), filtered through the URL. */
export function Sites() {
  const { can } = useAuth();
  const { query } = useLocation();
  const fleet = useFleet();
  const [text, setText] = useState(query.get('q') ?? '');
  const setParam = (k: string, v: string) => {
    const q = new URLSearchParams(location.search);
    if (v) q.set(k, v);
    else q.delete(k);
    navigate(`/sites${q.toString() ? `?${q}` : ''}`, true);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setParam('q', text.trim());
  };
  const sites = fleet.data?.sites ?? [];
  const rows = sites.filter(siteFilter(query));
  const active = FILTER_KEYS.filter((k) => query.get(k)).map((k) => `${k}=${query.get(k)}`);
  const regions = [...new Set(sites.map((s) => s.region ?? NO_REGION))].sort();
  return (
    <>
      <h1>Sites</h1>
      <div className="filters">
        <search>
          <form className="row" onSubmit={submit} aria-label="Filter sites">
            <label htmlFor="site-q">Name</label>
            <input id="site-q" value={text} onChange={(e) => setText(e.target.value)} placeholder="berlin" />
            <button type="submit" className="secondary">
              Apply
            </button>
          </form>
        </search>
        <label htmlFor="site-region">Region</label>
        <select id="site-region" value={query.get('region') ?? ''} onChange={(e) => setParam('region', e.target.value)}>
          <option value="">any</option>
          {regions.map((r) => (
            <option key={r}>{r}</option>
          ))}
        </select>
        <label htmlFor="site-health">Health</label>
        <select id="site-health" value={query.get('health') ?? ''} onChange={(e) => setParam('health', e.target.value)}>
          <option value="">any</option>
          {HEALTH_ORDER.map((h) => (
            <option key={h} value={h}>
              {HEALTH[h].label}
            </option>
          ))}
        </select>
        {active.length > 0 && (
          <Link to="/sites" className="secondary">
            Clear filters ({active.join(', ')})
          </Link>
        )}
        <Link to="/r/sites">{can('sites', 'create') ? 'Create or edit sites' : 'Site objects'}</Link>
      </div>
      {fleet.isPending && <Loading what="sites" />}
      <ErrorBox error={fleet.error} title="Could not load sites" />
      {fleet.data && rows.length === 0 && <Empty>{sites.length ? 'No sites match these filters.' : 'No sites yet.'}</Empty>}
      {rows.length > 0 && (
        <div className="fleet-grid">
          <div className="table-scroll">
            <table data-testid="sites">
              <thead>
                <tr>
                  <th scope="col">site</th>
                  <th scope="col">region</th>
                  <th scope="col">health</th>
                  <th scope="col" className="num">
                    hosts online
                  </th>
                  <th scope="col" className="num">
                    clusters
                  </th>
                  <th scope="col">last change</th>
                </tr>
              </thead>
              <tbody>
                {rows.slice(0, MAX_ROWS).map((s) => (
                  <tr key={s.name} data-row={s.name}>
                    <th scope="row">
                      <Link to={`/sites/${encodeURIComponent(s.name)}`}>{s.name}</Link>
                      {s.displayName && <span className="muted"> {s.displayName}</span>}
                    </th>
                    <td>{s.region ?? '—'}</td>
                    <td>
                      <HealthBadge health={s.health} />
                    </td>
                    <td className="num">
                      <Link to={`/hosts?site=${encodeURIComponent(s.name)}`}>
                        {s.hosts.byConnectivity.online ?? 0} / {s.hosts.total}
                      </Link>
                    </td>
                    <td className="num">
                      {s.clusters ? <Link to={`/clusters?site=${encodeURIComponent(s.name)}`}>{s.clusters.total}</Link> : fleet.data?.versions ? 0 : '—'}
                    </td>
                    <td className="when">{formatValue(s.lastChange)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <p className="muted" role="status">
            {rows.length > MAX_ROWS
              ? `Showing ${MAX_ROWS} of ${rows.length.toLocaleString()} sites: narrow the filters to see the rest.`
              : `${rows.length.toLocaleString()} of ${sites.length.toLocaleString()} sites`}
          </p>
        </div>
      )}
    </>
  );
}

/** One site: its health, where it is, its maintenance windows, and its hosts and clusters. */
export function SiteDetail({ name }: { name: string }) {
  const { can } = useAuth();
  const fleet = useFleet();
  const site = useQuery({ queryKey: ['get', 'sites', name], queryFn: () => api.get('sites', name), retry: false });
  const summary = fleet.data?.sites.find((s) => s.name === name);
  const enc = encodeURIComponent(name);
  const spec = site.data?.spec;
  return (
    <>
      <h1>
        {spec?.displayName ?? name} {summary && <HealthBadge health={summary.health} />}
      </h1>
      {site.isPending && <Loading what={`site ${name}`} />}
      {site.error && !summary && <ErrorBox error={site.error} title={`Could not load site ${name}`} />}
      {site.error && summary && <p className="muted">Hosts name this site, but no Site object {name} exists (no position or maintenance windows).</p>}
      <dl className="facts" data-testid="site-facts">
        {summary && (
          <>
            <dt>Health</dt>
            <dd>{siteDetail(summary)}</dd>
            <dt>Last change</dt>
            <dd>{formatValue(summary.lastChange)}</dd>
          </>
        )}
        {spec && (
          <>
            <dt>Region</dt>
            <dd>{site.data?.metadata.labels.region ?? '—'}</dd>
            <dt>Position</dt>
            <dd>{spec.coordinates ? `${spec.coordinates.latitude}, ${spec.coordinates.longitude}` : '—'}</dd>
            <dt>Address</dt>
            <dd>{spec.address ?? '—'}</dd>
            <dt>Time zone</dt>
            <dd>{spec.timezone}</dd>
            <dt>Maintenance window</dt>
            <dd>
              {(spec.maintenanceWindows ?? []).length === 0
                ? 'none: changes may happen at any time'
                : site.data?.status.windowOpen
                  ? `open, closes ${formatValue(site.data.status.windowClosesAt)}`
                  : `closed, opens ${formatValue(site.data?.status.nextWindowAt)}`}
            </dd>
          </>
        )}
      </dl>
      <p>
        <Link to={`/r/sites/${enc}`}>{can('sites', 'update') ? 'Edit site' : 'Site object (spec, events)'}</Link>
      </p>
      <section aria-labelledby="site-hosts-h">
        <h2 id="site-hosts-h">
          Hosts <Link to={`/hosts?site=${enc}`}>open in the hosts list</Link>
        </h2>
        <ResourceTable
          plural="edgehosts"
          fieldSelector={`spec.site=${name}`}
          rowLink={(r) => `/hosts/${encodeURIComponent(r.metadata.name)}`}
          emptyText="No hosts at this site."
          pageSize={50}
        />
      </section>
      <section aria-labelledby="site-clusters-h">
        <h2 id="site-clusters-h">
          Clusters <Link to={`/clusters?site=${enc}`}>open in the clusters list</Link>
        </h2>
        <ResourceTable
          plural="clusters"
          fieldSelector={`spec.site=${name}`}
          rowLink={(r) => `/clusters/${encodeURIComponent(r.metadata.name)}`}
          emptyText="No clusters name this site (a cluster without spec.site counts at its first node's site in the health above)."
          pageSize={50}
        />
      </section>
    </>
  );
}
