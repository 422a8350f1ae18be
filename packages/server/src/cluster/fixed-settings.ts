import { type ClusterSpec, cniIsBundled, EdgeplaneError, rulesFor, substituteVariables } from '@edgeplane/protocol';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { stableJson, variableValues } from './render.js';

/**
 * Refuses a cluster update (a new profile revision or new variable values) that changes a setting
 * the distribution fixes when the cluster is created (`changeEffect` 'new-cluster' in
 * @edgeplane/protocol kubernetes/): k3s/rke2 "critical configuration values" such as cluster-cidr,
 * cluster-domain or flannel-backend (a server restarted with another value refuses to start:
 * "critical configuration value mismatch"), rke2's cni, kubeadm's networking or etcd, the network
 * CNI, the distribution itself. Such a change needs a new cluster.
 */
export function checkFixedSettings(before: { spec: ClusterSpec; profile: PinnedProfileSpec }, after: { spec: ClusterSpec; profile: PinnedProfileSpec }): void {
  const a = substituteVariables(before.profile.layers, variableValues(before.profile, before.spec));
  const b = substituteVariables(after.profile.layers, variableValues(after.profile, after.spec));
  const ka = a.kubernetes;
  const kb = b.kubernetes;
  if (!ka || !kb) return;
  const changed: string[] = [];
  if (ka.distribution !== kb.distribution) changed.push('kubernetes.distribution');
  else {
    const rules = rulesFor(kb.distribution);
    for (const key of new Set([...Object.keys(ka.config), ...Object.keys(kb.config)])) {
      if (rules.changeEffect(key) === 'new-cluster' && stableJson(ka.config[key]) !== stableJson(kb.config[key])) changed.push(`kubernetes.config.${key}`);
    }
    // The CNI decides the pod network every node is wired to; a bundled default counts as itself.
    const cni = (layers: typeof a) => layers.network?.cni ?? (cniIsBundled(rules, undefined) ? rules.defaultCni : undefined);
    if (cni(a) !== cni(b)) changed.push('network.cni');
  }
  if (changed.length > 0)
    throw new EdgeplaneError(
      'InvalidState',
      `${changed.join(', ')} cannot change on a running cluster: ${ka.distribution} fixes ${changed.length > 1 ? 'them' : 'it'} when the cluster is created (create a new cluster instead)`,
      { settings: changed },
    );
}
