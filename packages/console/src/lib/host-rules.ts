import { CLUSTER_ANNOTATION } from '@edgeplane/protocol';
import type { Resource } from './api';

/**
 * The cluster that depends on a host, if any (edgehost/host-membership.ts): a node of it (the
 * cluster annotation, or a node in its status), or the appliance its VMs run on. `clusters` is the
 * cluster list the page has; without it only the annotation is known.
 */
export function dependentCluster(h: Resource, clusters: Resource[] = []): string | undefined {
  const name = h.metadata.name;
  return (
    clusterOfHost(h) ??
    clusters.find((c) => c.spec.appliance === name || ((c.status.nodes ?? []) as { host: string }[]).some((n) => n.host === name))?.metadata.name
  );
}

/**
 * What the server accepts for a host in its current state, so the console never offers a button
 * the server would refuse. Each rule names the server code it mirrors; the Chromium test
 * console-host-actions.test.ts checks the buttons against the server for every state.
 */
export const clusterOfHost = (h: Resource): string | undefined => h.metadata.annotations?.[CLUSTER_ANNOTATION];
const pendingKey = (h: Resource): string | undefined => h.status.pendingKeyFingerprint as string | undefined;

/** edgehost.service.ts `approve`: a host waiting for approval, or a rejected one (the operator changed their mind). */
export const canApprove = (h: Resource) => h.status.state === 'pending-approval' || h.status.state === 'rejected';
/** edgehost.service.ts `approve-key`: a key change waits and the host is not rejected. */
export const canApproveKey = (h: Resource) => !!pendingKey(h) && h.status.state !== 'rejected';
/** edgehost.service.ts `reject-key`: a key change waits. */
export const canRejectKey = (h: Resource) => !!pendingKey(h);
/**
 * edgehost.service.ts `reject`: never a host a cluster depends on (HostInCluster: remove it from
 * its cluster first); a host already rejected has nothing to reject.
 */
export const canReject = (h: Resource, clusters?: Resource[]) => h.status.state !== 'rejected' && h.status.state !== 'in-use' && !dependentCluster(h, clusters);
/**
 * host-os-profile.ts checkAssignable: an approved (ready) host outside any cluster; a cluster
 * node takes its OS from the cluster's profile (HostInCluster), others are HostNotApproved.
 */
export const canAssignOsProfile = (h: Resource) => h.status.state === 'ready' && !clusterOfHost(h);
/** Removing spec.osProfile is always accepted when one is set. */
export const canRemoveOsProfile = (h: Resource) => !!h.spec.osProfile;
/**
 * remote-session.routes.ts: an approved host (ready, or in-use as a cluster node: that is where
 * troubleshooting is needed) whose agent is connected (HostOffline otherwise).
 */
export const canOpenSession = (h: Resource) => (h.status.state === 'ready' || h.status.state === 'in-use') && h.status.connectivity === 'online';
