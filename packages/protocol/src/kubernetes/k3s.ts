/**
 * k3s rules. Sources (k3s v1.30/v1.31):
 *  - token formats: k3s-io/k3s pkg/clientaccess/token.go (parseToken, ParseUsernamePassword) and
 *    pkg/util/token.go (NormalizeToken: the server token must be `<PASSWORD>` or
 *    `K10<CA-HASH>::<USERNAME>:<PASSWORD>`; a bootstrap token `abcdef.0123456789abcdef` is refused,
 *    tests/e2e/... "Verify server fails to start with bootstrap token");
 *  - config keys: docs.k3s.io cli/server and cli/agent (config.yaml keys are the long flag names,
 *    docs installation/configuration "Configuration File"); unknown keys are skipped with a warning
 *    since v1.21.7/v1.22.4 (k3s-io/k3s#4509);
 *  - "Critical Configuration Values" (docs cli/server): must be equal on every server, so a running
 *    cluster cannot change them;
 *  - etcd members: pkg/etcd/member_controller.go (onRemove: deleting a Node labelled etcd removes its member);
 *  - CNI: flannel is bundled (`flannel-backend`, default vxlan); `flannel-backend: none` runs no CNI.
 */
import { type ConfigKeyRule, type ConfigValueType, type DistributionRules, flagTableProblems } from './rules.js';

/** `[a-z0-9]{6}.[a-z0-9]{16}`: k8s.io/cluster-bootstrap/token/api BootstrapTokenPattern, which k3s uses (kubeadm.NewBootstrapTokenString). */
export const BOOTSTRAP_TOKEN_PATTERN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;

/** k3s pkg/util/token.go NormalizeToken's error, word for word. */
export const SERVER_TOKEN_MESSAGE = 'failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>';

/**
 * pkg/clientaccess/token.go parseToken + ParseUsernamePassword: what a token is made of, or why it
 * does not parse. `password` is set only for the username/password form a server accepts.
 */
export function parseK3sToken(token: string): { error?: string; bootstrap?: boolean; caHash?: string; password?: string } {
  if (token.length === 0) return { error: 'token must not be empty' };
  let t = token;
  if (!t.startsWith('K10')) t = BOOTSTRAP_TOKEN_PATTERN.test(t) ? `K10::${t}` : `K10:::${t}`;
  t = t.slice(3);
  const sep = t.indexOf('::');
  let creds = t;
  let caHash = '';
  if (sep >= 0) {
    caHash = t.slice(0, sep);
    if (caHash.length > 0 && caHash.length !== 64) return { error: 'invalid token CA hash length' };
    creds = t.slice(sep + 2);
  }
  if (BOOTSTRAP_TOKEN_PATTERN.test(creds)) return { bootstrap: true, caHash };
  const colon = creds.indexOf(':');
  if (colon < 0 || creds.length === colon + 1) return { error: 'invalid token format' };
  return { caHash, password: creds.slice(colon + 1) };
}

/** Why k3s/rke2 refuse `token` as the server token (NormalizeToken), or undefined. */
export function rancherServerTokenProblem(token: string): string | undefined {
  const parsed = parseK3sToken(token);
  return parsed.password === undefined ? SERVER_TOKEN_MESSAGE : undefined;
}

type Effect = ConfigKeyRule['effect'];
const keys = (role: ConfigKeyRule['role'], type: ConfigValueType, names: string[], effect: Effect = 'restart'): Record<string, ConfigKeyRule> =>
  Object.fromEntries(names.map((n) => [n, { type, role, effect }]));

/** Options of both `server` and `agent` (docs cli/agent), shared by k3s and rke2 unless noted. */
export const RANCHER_AGENT_KEYS: Record<string, ConfigKeyRule> = {
  ...keys('agent', 'string', [
    'config',
    'token',
    'token-file',
    'server',
    'node-name',
    'image-credential-provider-bin-dir',
    'image-credential-provider-config',
    'container-runtime-endpoint',
    'default-runtime',
    'image-service-endpoint',
    'pause-image',
    'snapshotter',
    'private-registry',
    'system-default-registry',
    'resolv-conf',
    'log',
    'vmodule',
    'bind-address',
    'airgap-extra-registry',
  ]),
  ...keys('agent', 'string', ['data-dir'], 'new-cluster'),
  ...keys('agent', 'list', [
    'node-label',
    'node-taint',
    'node-ip',
    'node-external-ip',
    'node-internal-dns',
    'node-external-dns',
    'kubelet-arg',
    'kube-proxy-arg',
  ]),
  ...keys('agent', 'bool', [
    'with-node-id',
    'protect-kernel-defaults',
    'selinux',
    'debug',
    'alsologtostderr',
    'enable-pprof',
    'disable-default-registry-endpoint',
  ]),
  ...keys('agent', 'int', ['lb-server-port', 'v']),
};

/** `server` options both distributions take (docs cli/server, docs.rke2.io reference/server_config). */
export const RANCHER_SERVER_KEYS: Record<string, ConfigKeyRule> = {
  ...keys('server', 'string', [
    'advertise-address',
    'write-kubeconfig',
    'write-kubeconfig-mode',
    'write-kubeconfig-group',
    'service-node-port-range',
    'datastore-cafile',
    'datastore-certfile',
    'datastore-keyfile',
    'etcd-snapshot-name',
    'etcd-snapshot-schedule-cron',
    'etcd-snapshot-dir',
    'etcd-s3-endpoint',
    'etcd-s3-endpoint-ca',
    'etcd-s3-access-key',
    'etcd-s3-secret-key',
    'etcd-s3-bucket',
    'etcd-s3-region',
    'etcd-s3-folder',
    'etcd-s3-proxy',
    'etcd-s3-config-secret',
    'etcd-s3-timeout',
    'cluster-reset-restore-path',
    'kine-tls',
  ]),
  ...keys(
    'server',
    'string',
    ['agent-token', 'agent-token-file', 'cluster-dns', 'cluster-domain', 'egress-selector-mode', 'secrets-encryption-provider'],
    'new-cluster',
  ),
  ...keys('server', 'string', ['cluster-cidr', 'service-cidr', 'datastore-endpoint'], 'new-cluster'),
  ...keys('server', 'list', [
    'tls-san',
    'disable',
    'kube-apiserver-arg',
    'etcd-arg',
    'kube-controller-manager-arg',
    'kube-scheduler-arg',
    'kube-cloud-controller-manager-arg',
  ]),
  ...keys('server', 'bool', [
    'cluster-reset',
    'tls-san-security',
    'etcd-expose-metrics',
    'etcd-disable-snapshots',
    'etcd-snapshot-compress',
    'etcd-s3',
    'etcd-s3-skip-ssl-verify',
    'etcd-s3-insecure',
    'disable-scheduler',
    'disable-kube-proxy',
    'disable-apiserver',
    'disable-controller-manager',
    'disable-etcd',
    'supervisor-metrics',
  ]),
  ...keys('server', 'bool', ['disable-cloud-controller', 'disable-helm-controller', 'embedded-registry', 'secrets-encryption'], 'new-cluster'),
  ...keys('server', 'int', ['https-listen-port', 'advertise-port', 'etcd-snapshot-retention']),
};

/** k3s-only options (docs cli/server, cli/agent). */
const K3S_ONLY: Record<string, ConfigKeyRule> = {
  ...keys('agent', 'string', ['flannel-iface', 'flannel-conf', 'flannel-cni-conf', 'vpn-auth', 'vpn-auth-file', 'nonroot-devices']),
  ...keys('agent', 'bool', ['docker', 'rootless', 'prefer-bundled-bin']),
  ...keys('server', 'string', ['servicelb-namespace', 'default-local-storage-path', 'helm-job-image']),
  ...keys('server', 'string', ['flannel-backend'], 'new-cluster'),
  ...keys('server', 'bool', ['cluster-init', 'flannel-ipv6-masq', 'flannel-external-ip', 'disable-network-policy'], 'new-cluster'),
};

export const K3S_CONFIG_KEYS: Record<string, ConfigKeyRule> = { ...RANCHER_AGENT_KEYS, ...RANCHER_SERVER_KEYS, ...K3S_ONLY };

export const k3sRules: DistributionRules = {
  distribution: 'k3s',
  joinPort: 6443,
  serverTokenProblem: rancherServerTokenProblem,
  bundledCnis: ['flannel'],
  defaultCni: 'flannel',
  etcdMemberRemoval: 'delete-node',
  configProblems: (config) => flagTableProblems(K3S_CONFIG_KEYS, config, 'k3s'),
  changeEffect: (key) => K3S_CONFIG_KEYS[key]?.effect ?? 'restart',
};
