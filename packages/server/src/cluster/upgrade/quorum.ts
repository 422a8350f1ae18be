import { type ClusterSpec, EdgeplaneError } from '@edgeplane/protocol';

/** Refuses a node list that removes a majority of the current control-plane nodes at once. */
export function quorumGuard(before: ClusterSpec['nodes'], after: ClusterSpec['nodes']): void {
  const cps = before.filter((n) => n.role === 'control-plane').map((n) => n.host);
  const kept = cps.filter((h) => after.some((n) => n.host === h && n.role === 'control-plane'));
  const quorum = Math.floor(cps.length / 2) + 1;
  if (cps.length > 1 && kept.length < quorum)
    throw new EdgeplaneError(
      'QuorumGuard',
      `removing ${cps.length - kept.length} of ${cps.length} control-plane nodes at once would lose etcd quorum (${quorum} must stay); remove them one at a time`,
      { controlPlanes: cps.length, removing: cps.filter((h) => !kept.includes(h)) },
    );
}
