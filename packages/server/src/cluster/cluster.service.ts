import { type ClusterSpec, EdgeplaneError, findKind } from '@edgeplane/protocol';
import { findRevision } from '../cluster-profile/cluster-profile.repository.js';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { recordEvent } from '../event/event.service.js';
import { findByName } from '../resource/resource.repository.js';
import { ResourceService } from '../resource/resource.service.js';
import type { Executor } from '../store/db.js';
import { deleteClusterRecords, findHosts, type HostRow, listSteps } from './cluster.repository.js';
import { checkFixedSettings } from './fixed-settings.js';
import { claimHosts, clusterOf, releaseHosts } from './host-claims.js';
import { checkHostOsMode, checkKubernetesChange, requireOsLayer } from './os-mode.js';
import { endpoints, requireKubernetes, stableJson } from './render.js';
import { quorumGuard } from './upgrade/quorum.js';
import { listClusterVms } from './virtualized/cluster-vm.repository.js';
import { checkVirtualizedUpdate, checkVmNames, clusterNodes, isVirtualized, validateVirtualized } from './virtualized/virtualized.js';
import { releaseVirtualized } from './virtualized/vm-hosts.js';

/**
 * Everything a cluster spec must satisfy before anything is written: the profile revision exists,
 * the node list makes sense, variables resolve, and every host is approved, online and free (or
 * already this cluster's). Returns the host rows not yet in this cluster.
 */
export async function validateCluster(
  db: Executor,
  name: string,
  spec: ClusterSpec,
  opts: { vmServerUrl?: string } = {},
): Promise<{ newHosts: HostRow[]; profile: PinnedProfileSpec }> {
  const { name: profileName, revision } = spec.profile;
  if (!(await findByName(db, 'cluster_profiles', profileName)))
    throw new EdgeplaneError('ProfileNotFound', `cluster profile "${profileName}" does not exist`, { profile: profileName });
  const rev = await findRevision(db, profileName, revision);
  if (!rev)
    throw new EdgeplaneError('ProfileRevisionNotFound', `cluster profile "${profileName}" has no revision ${revision}`, { profile: profileName, revision });
  const profile = JSON.parse(rev.spec) as PinnedProfileSpec;
  const kubernetes = requireKubernetes(profile.layers.kubernetes, profileName, revision);
  if (isVirtualized(spec)) requireOsLayer(profile, spec.profile, 'a virtualized cluster (its VMs boot the OS image)');

  // A virtualized cluster's nodes are its VMs (cluster/virtualized/).
  if (isVirtualized(spec)) checkVmNames(spec.vms ?? []);
  const nodes = clusterNodes(name, spec);
  const seen = new Set<string>();
  for (const n of nodes) {
    if (seen.has(n.host)) throw new EdgeplaneError('DuplicateHost', `host "${n.host}" is listed more than once`, { host: n.host });
    seen.add(n.host);
  }
  const cps = nodes.filter((n) => n.role === 'control-plane').length;
  if (cps === 0) throw new EdgeplaneError('NoControlPlane', 'a cluster needs at least one control-plane node');
  if (cps % 2 === 0 && !spec.allowEvenControlPlanes)
    throw new EdgeplaneError('EvenControlPlanes', `${cps} control-plane nodes: use an odd number, or set spec.allowEvenControlPlanes`, { controlPlanes: cps });

  if (spec.controlPlaneEndpoint !== undefined) {
    try {
      endpoints(kubernetes.distribution, spec.controlPlaneEndpoint);
    } catch {
      throw new EdgeplaneError('ValidationFailed', `spec.controlPlaneEndpoint "${spec.controlPlaneEndpoint}" is not a host, host:port or https://host:port`, {
        issues: [{ path: 'spec.controlPlaneEndpoint', message: 'expected host, host:port or https://host:port' }],
      });
    }
  }
  if (spec.vip) {
    // kube-vip runs as an add-on, applied once the first node is up: kubeadm needs the VIP earlier.
    if (kubernetes.distribution === 'kubeadm')
      throw new EdgeplaneError(
        'ValidationFailed',
        'spec.vip: kube-vip runs as an add-on on k3s and rke2; kubeadm needs the VIP before kubeadm init (put kube-vip in the OS image as a static pod and set spec.controlPlaneEndpoint)',
        { issues: [{ path: 'spec.vip', message: 'not available for kubeadm' }] },
      );
    if (
      spec.controlPlaneEndpoint !== undefined &&
      endpoints(kubernetes.distribution, spec.controlPlaneEndpoint).controlPlaneEndpoint !== `https://${spec.vip.address}:6443`
    )
      throw new EdgeplaneError('ValidationFailed', `spec.controlPlaneEndpoint must be the VIP (https://${spec.vip.address}:6443) or absent`, {
        issues: [{ path: 'spec.controlPlaneEndpoint', message: 'differs from spec.vip' }],
      });
  }
  const declared = new Map(profile.variables.map((v) => [v.name, v]));
  const unknown = Object.keys(spec.variables).filter((v) => !declared.has(v));
  if (unknown.length)
    throw new EdgeplaneError('UnknownVariable', `profile ${profileName} revision ${revision} declares no variable ${unknown.join(', ')}`, {
      variables: unknown,
    });
  const missing = profile.variables.filter((v) => v.required && v.default === undefined && spec.variables[v.name] === undefined).map((v) => v.name);
  if (missing.length) throw new EdgeplaneError('MissingVariable', `required variable(s) not given: ${missing.join(', ')}`, { variables: missing });

  if (isVirtualized(spec)) {
    await validateVirtualized(db, name, spec, new Set((await listClusterVms(db, name)).map((v) => v.vm)), opts.vmServerUrl);
    return { newHosts: [], profile };
  }
  const rows = new Map(
    (
      await findHosts(
        db,
        spec.nodes.map((n) => n.host),
      )
    ).map((h) => [h.name, h]),
  );
  const newHosts: HostRow[] = [];
  for (const n of spec.nodes) {
    const h = rows.get(n.host);
    if (!h) throw new EdgeplaneError('HostNotFound', `host "${n.host}" does not exist`, { host: n.host });
    // Members too: a new profile revision must fit every node's OS mode.
    checkHostOsMode(h, profile, spec.profile);
    const owner = clusterOf(h);
    if (owner === name) continue;
    if (owner || h.state === 'in-use')
      throw new EdgeplaneError('HostInUse', `host "${n.host}" already belongs to cluster "${owner ?? '?'}"`, { host: n.host, cluster: owner });
    if (h.state !== 'ready') throw new EdgeplaneError('HostNotApproved', `host "${n.host}" is ${h.state}, not approved`, { host: n.host, state: h.state });
    const osProfile = (JSON.parse(h.spec) as { osProfile?: { name: string } }).osProfile;
    if (osProfile)
      throw new EdgeplaneError(
        'HostHasOsProfile',
        `host "${n.host}" runs host OS profile "${osProfile.name}"; a cluster node takes its OS from the cluster's profile: remove spec.osProfile first`,
        { host: n.host, osProfile: osProfile.name },
      );
    if (h.connectivity !== 'online')
      throw new EdgeplaneError('HostOffline', `host "${n.host}" is ${h.connectivity}; its agent must be connected`, { host: n.host });
    newHosts.push(h);
  }
  return { newHosts, profile };
}

/** A move to another profile revision: refused when the new one asks for a version its image cannot run (os-mode.ts). */
export async function checkRevisionChange(db: Executor, current: ClusterSpec, next: ClusterSpec, profile: PinnedProfileSpec): Promise<void> {
  const was = current.profile;
  if (was.name === next.profile.name && was.revision === next.profile.revision) return;
  const rev = await findRevision(db, was.name, was.revision);
  checkKubernetesChange(rev ? (JSON.parse(rev.spec) as PinnedProfileSpec) : undefined, profile, next.profile);
}

export const clusters = new ResourceService(findKind('Cluster')!, 'clusters', {
  // Counted from the spec on every read, so a virtualized cluster counts its VMs as nodes.
  status: (row) => ({ ...JSON.parse(row.status), desiredNodes: clusterNodes(row.name, JSON.parse(row.spec) as ClusterSpec).length }),
  async prepareCreate(db, input, ctx) {
    const spec = input.spec as ClusterSpec;
    const { newHosts } = await validateCluster(db, input.metadata.name, spec, ctx);
    await claimHosts(db, input.metadata.name, newHosts);
    await recordEvent(db, {
      involvedObject: { kind: 'Cluster', name: input.metadata.name },
      type: 'Normal',
      reason: 'Created',
      message: `created by ${ctx.user} with ${clusterNodes(input.metadata.name, spec).length} node(s), profile ${spec.profile.name} revision ${spec.profile.revision}`,
      source: 'server',
    });
    return { status: { phase: 'Provisioning', conditions: [], nodes: [] } };
  },
  async prepareUpdate(db, row, next, ctx) {
    const spec = next as ClusterSpec;
    const initHost = (await listSteps(db, row.name)).get('init');
    if (initHost && !clusterNodes(row.name, spec).some((n) => n.host === initHost && n.role === 'control-plane'))
      throw new EdgeplaneError('InvalidState', `host "${initHost}" initialized this cluster and must stay a control-plane node`, { host: initHost });
    quorumGuard(clusterNodes(row.name, JSON.parse(row.spec) as ClusterSpec), clusterNodes(row.name, spec));
    // The VIP is the endpoint, in every certificate and kubeconfig of the cluster: it cannot move.
    if (stableJson((JSON.parse(row.spec) as ClusterSpec).vip ?? null) !== stableJson(spec.vip ?? null))
      throw new EdgeplaneError('InvalidState', 'spec.vip cannot change: the VIP is the endpoint in every certificate and kubeconfig of the cluster', {});
    checkVirtualizedUpdate(JSON.parse(row.spec) as ClusterSpec, spec);
    const { newHosts, profile } = await validateCluster(db, row.name, spec, ctx);
    await checkRevisionChange(db, JSON.parse(row.spec) as ClusterSpec, spec, profile);
    const previous = JSON.parse(row.spec) as ClusterSpec;
    const previousRevision = await findRevision(db, previous.profile.name, previous.profile.revision);
    if (previousRevision) checkFixedSettings({ spec: previous, profile: JSON.parse(previousRevision.spec) as PinnedProfileSpec }, { spec, profile });
    const before = (JSON.parse(row.spec) as ClusterSpec).nodes.map((n) => n.host);
    await releaseHosts(
      db,
      row.name,
      before.filter((h) => !spec.nodes.some((n) => n.host === h)),
      ctx,
    );
    await claimHosts(db, row.name, newHosts);
    return {};
  },
  async beforeDelete(db, row, ctx) {
    // VM nodes: their hosts and records go; the appliance's virt manager then removes the domains.
    await releaseVirtualized(db, row.name, ctx);
    await releaseHosts(
      db,
      row.name,
      (JSON.parse(row.spec) as ClusterSpec).nodes.map((n) => n.host),
      ctx,
    );
    await deleteClusterRecords(db, row.name);
    await recordEvent(db, {
      involvedObject: { kind: 'Cluster', name: row.name },
      type: 'Normal',
      reason: 'Deleted',
      message: `deleted by ${ctx.user}; its hosts are ready for another cluster`,
      source: 'server',
    });
  },
});
