import type { Distribution } from '../host-spec.js';
import { k3sRules } from './k3s.js';
import { kubeadmRules } from './kubeadm.js';
import { rke2Rules } from './rke2.js';
import type { DistributionRules } from './rules.js';

export * from './k3s.js';
export * from './kubeadm.js';
export * from './rke2.js';
export * from './rules.js';

export const KUBERNETES_RULES: Record<Distribution, DistributionRules> = { k3s: k3sRules, rke2: rke2Rules, kubeadm: kubeadmRules };

export function rulesFor(distribution: Distribution): DistributionRules {
  return KUBERNETES_RULES[distribution];
}
