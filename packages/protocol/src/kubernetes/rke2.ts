/**
 * rke2 rules. Sources (rke2 v1.30/v1.31):
 *  - tokens: rke2 runs k3s's server code (its go.mod pins k3s-io/k3s), so the server token follows
 *    k3s pkg/util/token.go NormalizeToken (see k3s.ts); docs.rke2.io security/token: "K10<CA-HASH>::<USERNAME>:<PASSWORD>" or a plain secret;
 *  - config keys: docs.rke2.io reference/server_config and reference/linux_agent_config (config.yaml
 *    keys are the long flag names; unknown keys are skipped with a warning, as in k3s);
 *  - join: servers and agents register on the supervisor port 9345 (docs.rke2.io install/ha "server: https://<fixed>:9345");
 *  - CNI: `cni` is one of canal (default), calico, cilium, flannel, or `none` (docs.rke2.io networking/basic_network_options);
 *  - etcd members: the k3s member controller (pkg/etcd/member_controller.go) runs inside rke2: deleting the Node removes the member.
 */
import { RANCHER_AGENT_KEYS, RANCHER_SERVER_KEYS, rancherServerTokenProblem } from './k3s.js';
import { type ConfigKeyRule, type ConfigValueType, type DistributionRules, flagTableProblems } from './rules.js';

export const RKE2_SUPERVISOR_PORT = 9345;

const keys = (
  role: ConfigKeyRule['role'],
  type: ConfigValueType,
  names: string[],
  effect: ConfigKeyRule['effect'] = 'restart',
): Record<string, ConfigKeyRule> => Object.fromEntries(names.map((n) => [n, { type, role, effect }]));

const RKE2_ONLY: Record<string, ConfigKeyRule> = {
  ...keys('agent', 'string', ['kubelet-path', 'cloud-provider-name', 'cloud-provider-config', 'profile', 'runtime-image', 'kube-proxy-image']),
  ...keys('agent', 'list', ['kube-proxy-extra-mount', 'kube-proxy-extra-env']),
  ...keys('server', 'list', ['cni'], 'new-cluster'),
  ...keys('server', 'string', [
    'audit-policy-file',
    'pod-security-admission-config-file',
    'kube-apiserver-image',
    'kube-controller-manager-image',
    'kube-scheduler-image',
    'cloud-controller-manager-image',
    'etcd-image',
    'control-plane-resource-requests',
    'control-plane-resource-limits',
    'control-plane-probe-configuration',
    'ingress-controller',
  ]),
  ...keys('server', 'list', [
    'kube-apiserver-extra-mount',
    'kube-scheduler-extra-mount',
    'kube-controller-manager-extra-mount',
    'etcd-extra-mount',
    'cloud-controller-manager-extra-mount',
    'kube-apiserver-extra-env',
    'kube-scheduler-extra-env',
    'kube-controller-manager-extra-env',
    'etcd-extra-env',
    'cloud-controller-manager-extra-env',
  ]),
  ...keys('server', 'bool', ['enable-servicelb']),
};

export const RKE2_CONFIG_KEYS: Record<string, ConfigKeyRule> = { ...RANCHER_AGENT_KEYS, ...RANCHER_SERVER_KEYS, ...RKE2_ONLY };

export const rke2Rules: DistributionRules = {
  distribution: 'rke2',
  joinPort: RKE2_SUPERVISOR_PORT,
  serverTokenProblem: rancherServerTokenProblem,
  bundledCnis: ['canal', 'calico', 'cilium', 'flannel'],
  defaultCni: 'canal',
  etcdMemberRemoval: 'delete-node',
  configProblems: (config) => flagTableProblems(RKE2_CONFIG_KEYS, config, 'rke2'),
  changeEffect: (key) => RKE2_CONFIG_KEYS[key]?.effect ?? 'restart',
};
