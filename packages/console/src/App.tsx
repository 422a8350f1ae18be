import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Layout, objectPath } from './components/Layout';
import { Empty, Loading } from './components/ui';
import type { Resource } from './lib/api';
import { useAuth } from './lib/auth';
import { fleetQuery } from './lib/fleet';
import { profileCell } from './lib/profiles';
import { Link, match, useLocation } from './lib/router';
import { useWatch } from './lib/watch';
import { Audit } from './pages/Audit';
import { ClusterDetail } from './pages/ClusterDetail';
import { Clusters } from './pages/Clusters';
import { Generic } from './pages/Generic';
import { GenericDetail } from './pages/GenericDetail';
import { HostDetail } from './pages/HostDetail';
import { Hosts } from './pages/Hosts';
import { Login } from './pages/Login';
import { Overview } from './pages/Overview';
import { ProfileDetail } from './pages/ProfileDetail';
import { RolloutDetail } from './pages/RolloutDetail';
import { Shell } from './pages/Shell';
import { SiteDetail, Sites } from './pages/Sites';
import { Tokens } from './pages/Tokens';
import { ApiTokens, Users } from './pages/Users';

/** The Events page links each event's object to that object's page. */
function eventCell(e: Resource, path: string) {
  const o = e.spec.involvedObject as { kind: string; name: string } | undefined;
  if (path === 'spec.involvedObject.name' && o?.name) return <Link to={objectPath(o.kind, o.name)}>{o.name}</Link>;
  return undefined;
}

// Kinds without a page of their own here (remote sessions, and any later kind) appear
// through the generic pages as soon as they are in the protocol's KINDS.
function Page({ path }: { path: string }) {
  if (path === '/') return <Overview />;
  // The claim URL a pairing device shows as a QR: the hosts page with the claim form filled in.
  if (path === '/hosts' || path === '/claim') return <Hosts />;
  const host = match('/hosts/:name', path);
  if (host) return <HostDetail name={host.name} />;
  const shell = match('/hosts/:name/shell', path);
  if (shell) return <Shell host={shell.name} />;
  if (path === '/tokens') return <Tokens />;
  if (path === '/clusters') return <Clusters />;
  const cluster = match('/clusters/:name', path);
  if (cluster) return <ClusterDetail name={cluster.name} />;
  if (path === '/profiles') return <Generic plural="clusterprofiles" detailPath="/profiles" formatCell={profileCell} />;
  const profile = match('/profiles/:name', path);
  if (profile) return <ProfileDetail name={profile.name} />;
  if (path === '/rollouts') return <Generic plural="rollouts" detailPath="/rollouts" />;
  const rollout = match('/rollouts/:name', path);
  if (rollout) return <RolloutDetail name={rollout.name} />;
  if (path === '/sites') return <Sites />;
  const site = match('/sites/:name', path);
  if (site) return <SiteDetail name={site.name} />;
  if (path === '/users') return <Users />;
  if (path === '/apitokens') return <ApiTokens />;
  if (path === '/events') return <Generic plural="events" formatCell={eventCell} />;
  const generic = match('/r/:plural', path);
  if (generic) return <Generic plural={generic.plural} />;
  const detail = match('/r/:plural/:name', path);
  if (detail) return <GenericDetail plural={detail.plural} name={detail.name} />;
  if (path === '/audit') return <Audit />;
  return <Empty>This page does not exist.</Empty>;
}

export function App() {
  const { token, me } = useAuth();
  const { path } = useLocation();
  const live = useWatch(me ? token : '');
  const qc = useQueryClient();
  // The Overview's slowest read (every site's health): started with the sign-in check rather than after it.
  useEffect(() => {
    if (token && location.pathname === '/') void qc.prefetchQuery(fleetQuery);
  }, [token, qc]);
  // Move focus to the page's content after navigation, so keyboard and screen-reader users land there.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on purpose whenever the path changes
  useEffect(() => {
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [path]);
  // The tab title follows the page's heading, also when it appears after loading or after sign-in.
  useEffect(() => {
    const update = () => {
      const heading = document.querySelector('main h1')?.textContent?.trim();
      const title = heading ? `${heading} · Edgeplane` : 'Edgeplane';
      if (document.title !== title) document.title = title;
    };
    update();
    const observer = new MutationObserver(update);
    observer.observe(document.getElementById('root') ?? document.body, { subtree: true, childList: true, characterData: true });
    return () => observer.disconnect();
  }, []);
  if (!token) return <Login />;
  if (!me) return <Loading what="your account" />;
  return (
    <Layout live={live}>
      <Page path={path} />
    </Layout>
  );
}
