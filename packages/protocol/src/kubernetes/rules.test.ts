import { describe, expect, it } from 'vitest';
import {
  cniIsBundled,
  KUBEADM_CERTS_EXPIRED,
  KUBEADM_FATAL,
  KUBERNETES_RULES,
  kubeadmApiVersion,
  kubeadmReadsApiVersion,
  parseK3sToken,
  SERVER_TOKEN_MESSAGE,
} from '../index.js';

const CA = 'a'.repeat(64);

describe('server tokens', () => {
  // [distribution, token, accepted, upstream source]
  it.each([
    ['k3s', 'abcdef.0123456789abcdef', false, 'k3s tests/e2e: "Verify server fails to start with bootstrap token"; pkg/util/token.go NormalizeToken'],
    ['k3s', `K10${CA}::abcdef.0123456789abcdef`, false, 'pkg/clientaccess/token.go parseToken: bootstrap creds have no password'],
    ['k3s', '3f9a0c0e5d1b4a7f8e2d6c9b0a1f3e5d7c9b1a3f5e7d9c1b', true, 'pkg/clientaccess/token.go parseToken: a bare password becomes K10:::<password>'],
    ['k3s', `K10${CA}::server:s3cret`, true, 'pkg/clientaccess/token.go: K10<CA-HASH>::<USERNAME>:<PASSWORD>'],
    ['k3s', 'K10abc::server:s3cret', false, 'pkg/clientaccess/token.go: "invalid token CA hash length"'],
    ['k3s', `K10${CA}::server:`, false, 'pkg/clientaccess/token.go: "invalid token format" (empty password)'],
    ['k3s', '', false, 'pkg/clientaccess/token.go: "token must not be empty"'],
    ['rke2', 'abcdef.0123456789abcdef', false, 'rke2 embeds k3s pkg/util/token.go NormalizeToken'],
    ['rke2', 'plain-shared-secret', true, 'docs.rke2.io security/token: a plain secret'],
    ['kubeadm', 'abcdef.0123456789abcdef', true, 'k8s.io/cluster-bootstrap/token/api/types.go BootstrapTokenPattern'],
    ['kubeadm', 'ABCDEF.0123456789abcdef', false, 'BootstrapTokenPattern is lower case [a-z0-9]'],
    ['kubeadm', 'plain-shared-secret', false, 'BootstrapTokenPattern: [a-z0-9]{6}.[a-z0-9]{16}'],
  ] as const)('%s %j accepted=%s (%s)', (distribution, token, accepted, _source) => {
    const problem = KUBERNETES_RULES[distribution].serverTokenProblem(token);
    expect(problem === undefined).toBe(accepted);
    if (!accepted && distribution !== 'kubeadm') expect(problem).toBe(SERVER_TOKEN_MESSAGE);
  });

  it('tells a bootstrap token from a password (pkg/clientaccess/token.go parseToken)', () => {
    expect(parseK3sToken('abcdef.0123456789abcdef')).toMatchObject({ bootstrap: true });
    expect(parseK3sToken('K10::server:pw')).toMatchObject({ password: 'pw', caHash: '' });
  });
});

describe('config keys', () => {
  // [distribution, config, problem keys, upstream source]
  it.each([
    ['k3s', { 'flannel-backend': 'none', 'disable-network-policy': true, disable: ['traefik'] }, [], 'docs.k3s.io cli/server'],
    ['k3s', { 'kubelet-arg': ['max-pods=150'], 'node-ip': '10.0.0.2' }, [], 'docs.k3s.io cli/agent'],
    ['k3s', { 'kublet-arg': 'max-pods=150' }, ['kublet-arg'], 'k3s-io/k3s#8266: "Unknown flag --kublet-arg found in config.yaml, skipping"'],
    ['k3s', { cni: 'calico' }, ['cni'], 'cni is an rke2 option; k3s has flannel-backend (docs.k3s.io cli/server)'],
    ['k3s', { 'cluster-init': 'yes' }, ['cluster-init'], 'docs.k3s.io cli/server: --cluster-init is a switch'],
    ['k3s', { 'https-listen-port': 'abc' }, ['https-listen-port'], 'docs.k3s.io cli/server: --https-listen-port value (a port)'],
    ['rke2', { cni: ['multus', 'canal'], profile: 'cis' }, [], 'docs.rke2.io reference/server_config'],
    ['rke2', { 'flannel-backend': 'none' }, ['flannel-backend'], 'flannel-backend is k3s-only (docs.rke2.io reference/server_config has no such option)'],
    [
      'kubeadm',
      { apiServer: { extraArgs: { 'audit-log-maxage': '30' } }, etcd: { local: {} } },
      [],
      'cmd/kubeadm/app/apis/kubeadm/v1beta4 ClusterConfiguration',
    ],
    ['kubeadm', { apiserver: { extraArgs: {} } }, ['apiserver'], 'v1beta4 ClusterConfiguration: the field is apiServer (strict decoding warns and ignores)'],
    ['kubeadm', { clusterName: { name: 'x' } }, ['clusterName'], 'v1beta4 ClusterConfiguration.clusterName is a string'],
  ] as const)('%s %j -> %j (%s)', (distribution, config, problemKeys, _source) => {
    expect(KUBERNETES_RULES[distribution].configProblems(config as Record<string, unknown>).map((p) => p.key)).toEqual(problemKeys);
  });

  // [distribution, key, effect, upstream source]
  it.each([
    ['k3s', 'kubelet-arg', 'restart', 'docs.k3s.io installation/configuration: config.yaml is read at start'],
    ['k3s', 'cluster-cidr', 'new-cluster', 'docs.k3s.io cli/server "Critical Configuration Values"'],
    ['k3s', 'flannel-backend', 'new-cluster', 'docs.k3s.io cli/server "Critical Configuration Values"'],
    ['rke2', 'cni', 'new-cluster', 'docs.rke2.io networking/basic_network_options: the CNI is chosen at install'],
    ['rke2', 'kube-apiserver-arg', 'restart', 'docs.rke2.io reference/server_config'],
    ['kubeadm', 'apiServer', 'not-applied', 'kubeadm reads --config only at init/join (kubernetes.io kubeadm-reconfigure)'],
    ['kubeadm', 'networking', 'new-cluster', 'kubeadm-reconfigure: networking cannot be changed after init'],
  ] as const)('%s %s: %s (%s)', (distribution, key, effect, _source) => {
    expect(KUBERNETES_RULES[distribution].changeEffect(key)).toBe(effect);
  });
});

describe('CNI, etcd and join rules', () => {
  // [distribution, cni, bundled, upstream source]
  it.each([
    ['k3s', undefined, true, 'docs.k3s.io networking: flannel is the default'],
    ['k3s', 'flannel', true, 'docs.k3s.io networking'],
    ['k3s', 'calico', false, 'docs.k3s.io networking: "--flannel-backend=none" and install your own CNI'],
    ['rke2', undefined, true, 'docs.rke2.io networking/basic_network_options: canal is the default'],
    ['rke2', 'cilium', true, 'docs.rke2.io networking/basic_network_options'],
    ['rke2', 'none', false, 'docs.rke2.io: cni none deploys no CNI'],
    ['rke2', 'kube-router', false, 'not one of rke2s bundled CNIs'],
    ['kubeadm', undefined, false, 'kubernetes.io create-cluster-kubeadm: "Installing a Pod network add-on"'],
    ['kubeadm', 'calico', false, 'kubeadm bundles no CNI'],
  ] as const)('%s cni=%s bundled=%s (%s)', (distribution, cni, bundled, _source) => {
    expect(cniIsBundled(KUBERNETES_RULES[distribution], cni)).toBe(bundled);
  });

  it.each([
    ['k3s', 'delete-node', 6443, 'k3s pkg/etcd/member_controller.go onRemove'],
    ['rke2', 'delete-node', 9345, 'rke2 embeds the k3s member controller; supervisor port 9345 (docs.rke2.io install/ha)'],
    ['kubeadm', 'kubeadm-reset', 6443, 'cmd/kubeadm/app/cmd/phases/reset/removeetcdmember.go'],
  ] as const)('%s removes etcd members by %s and joins on %d (%s)', (distribution, removal, port, _source) => {
    expect(KUBERNETES_RULES[distribution].etcdMemberRemoval).toBe(removal);
    expect(KUBERNETES_RULES[distribution].joinPort).toBe(port);
  });

  // [version, apiVersion, read, upstream source]
  it.each([
    ['v1.30.4', 'kubeadm.k8s.io/v1beta3', true, 'cmd/kubeadm/app/apis/kubeadm/v1beta3 (1.22+)'],
    ['v1.30.4', 'kubeadm.k8s.io/v1beta4', false, 'v1beta4 was added in 1.31 (cmd/kubeadm/app/apis/kubeadm/v1beta4/doc.go)'],
    ['v1.31.2', 'kubeadm.k8s.io/v1beta4', true, 'cmd/kubeadm/app/apis/kubeadm/v1beta4'],
    ['v1.31.2', 'kubeadm.k8s.io/v1beta3', true, 'v1beta3 is deprecated, still read in 1.31'],
    ['v1.31.2', 'kubeadm.k8s.io/v1beta2', false, 'v1beta2 was removed in 1.26'],
  ] as const)('kubeadm %s reads %s: %s (%s)', (version, apiVersion, read, _source) => {
    expect(kubeadmReadsApiVersion(version, apiVersion)).toBe(read);
  });

  it('writes v1beta4 from 1.31 and v1beta3 before (cmd/kubeadm/app/apis/kubeadm/v1beta4/doc.go)', () => {
    expect(kubeadmApiVersion('v1.31.0')).toBe('kubeadm.k8s.io/v1beta4');
    expect(kubeadmApiVersion('v1.30.9')).toBe('kubeadm.k8s.io/v1beta3');
  });

  // [stderr, fatal, upstream source]
  it.each([
    ['Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired.', false, 'copycerts.go: an upload renews it'],
    ['couldn\'t validate the identity of the API Server: token id "abcdef" is invalid for this cluster or it has expired', true, 'discovery/token'],
    ['error downloading certs: error decoding certs: cipher: message authentication failed', true, 'copycerts.go: wrong certificate key'],
    ['dial tcp 10.0.0.1:6443: connect: connection refused', false, 'nothing listens yet'],
  ] as const)('kubeadm failure %j fatal=%s (%s)', (stderr, fatal, _source) => {
    expect(KUBEADM_FATAL.test(stderr)).toBe(fatal);
    if (stderr.includes('kubeadm-certs')) expect(KUBEADM_CERTS_EXPIRED.test(stderr)).toBe(true);
  });
});
