import { KINDS } from '@edgeplane/protocol';
import type { ReactNode } from 'react';
import { useAuth } from '../lib/auth';
import { Link, useLocation } from '../lib/router';
import type { WatchState } from '../lib/watch';

/** Pages with their own screens; every other kind in KINDS gets the generic page at /r/<plural>. */
export const PAGE_PATHS: Record<string, string> = {
  edgehosts: '/hosts',
  registrationtokens: '/tokens',
  clusters: '/clusters',
  clusterprofiles: '/profiles',
  rollouts: '/rollouts',
  sites: '/sites',
  events: '/events',
  users: '/users',
  apitokens: '/apitokens',
};
const LABELS: Record<string, string> = {
  edgehosts: 'Edge hosts',
  registrationtokens: 'Registration tokens',
  events: 'Events',
  users: 'Users',
  apitokens: 'API tokens',
  projects: 'Projects',
  clusterprofiles: 'Cluster profiles',
  clusters: 'Clusters',
  sites: 'Sites',
  remotesessions: 'Remote sessions',
  auditevents: 'Audit log',
};
export const pathFor = (plural: string) => PAGE_PATHS[plural] ?? `/r/${plural}`;
/** Kinds whose objects have a page of their own under their list's path; the rest use /r/<plural>/<name>. */
const DETAIL_PAGES = new Set(['edgehosts', 'clusters', 'clusterprofiles', 'rollouts', 'sites']);
/** The console page of one object, by its kind ("Cluster") and name, as events name them. */
export function objectPath(kind: string, name: string): string {
  const plural = KINDS.find((k) => k.kind === kind)?.plural ?? `${kind.toLowerCase()}s`;
  return `${DETAIL_PAGES.has(plural) ? PAGE_PATHS[plural] : `/r/${plural}`}/${encodeURIComponent(name)}`;
}
export const labelFor = (plural: string) => LABELS[plural] ?? `${plural[0].toUpperCase()}${plural.slice(1)}`;

export function Layout({ live, children }: { live: WatchState; children: ReactNode }) {
  const { me, can, logout } = useAuth();
  const { path } = useLocation();
  const nav = [
    { to: '/', label: 'Overview' },
    ...KINDS.filter((k) => can(k.plural, 'list')).map((k) => ({ to: pathFor(k.plural), label: labelFor(k.plural) })),
    ...(can('audit', 'list') ? [{ to: '/audit', label: 'Audit log' }] : []),
  ];
  const current = (to: string) => (to === '/' ? path === '/' : path === to || path.startsWith(`${to}/`));
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Edgeplane</span>
        <span className={`live live-${live}`} role="status" aria-live="polite" title="Live updates from the server">
          {live === 'live' ? 'Live' : live === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
        </span>
        <span className="who">
          {me?.user} <span className="badge">{me?.role}</span>
        </span>
        <button type="button" className="secondary" onClick={logout}>
          Log out
        </button>
      </header>
      <nav aria-label="Main" className="side">
        <ul>
          {nav.map((n) => (
            <li key={n.to}>
              <Link to={n.to} aria-current={current(n.to) ? 'page' : undefined}>
                {n.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
