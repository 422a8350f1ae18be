import { type Distribution, KubernetesSpec, rulesFor } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { driverFor } from './drivers.js';
import { bootstrapToken, certificateKey, kubeadmApiVersion } from './kubeadm.driver.js';

const VERSIONS: Record<Distribution, string> = { k3s: 'v1.30.4+k3s1', rke2: 'v1.30.4+rke2r1', kubeadm: 'v1.31.2' };

type Role = 'init' | 'join-cp' | 'worker';

function spec(distribution: Distribution, role: Role, extra: Partial<KubernetesSpec> = {}): KubernetesSpec {
  return KubernetesSpec.parse({
    distribution,
    version: VERSIONS[distribution],
    cluster: 'shop-17',
    nodeName: { init: 'edge-a1', 'join-cp': 'edge-b2', worker: 'edge-c3' }[role],
    role: role === 'worker' ? 'worker' : 'control-plane',
    init: role === 'init',
    controlPlaneEndpoint: 'https://10.20.0.10:6443',
    // The join secret as the server mints it (cluster.controller.ts): 48 hex characters, a password k3s/rke2 accept.
    token: '9d2f6a0c4e8b1d3f5a7c9e0b2d4f6a8c0e1f3a5b7c9d0e2f',
    podCidr: '10.42.0.0/16',
    serviceCidr: '10.43.0.0/16',
    nodeLabels: { 'edgeplane.io/site': 'shop-17', 'topology.kubernetes.io/zone': 'backroom' },
    nodeTaints: role === 'worker' ? [{ key: 'dedicated', value: 'pos', effect: 'NoSchedule' }] : [],
    controlPlaneSchedulable: false,
    network: distribution === 'k3s' ? { cni: 'calico', values: {} } : { cni: 'canal', values: { flannel: { backend: 'vxlan' } } },
    config: distribution === 'kubeadm' ? { apiServer: { extraArgs: { 'audit-log-maxage': '30' } } } : { disable: ['traefik'], 'kubelet-arg': ['max-pods=150'] },
    ...extra,
  });
}

const ROLES: Role[] = ['init', 'join-cp', 'worker'];
const DISTRIBUTIONS: Distribution[] = ['k3s', 'rke2', 'kubeadm'];

describe.each(DISTRIBUTIONS)('%s driver', (distribution) => {
  const driver = driverFor(distribution);

  it.each(ROLES)('writes the documented configuration for the %s node', async (role) => {
    const files = driver.files(spec(distribution, role));
    for (const file of files) {
      const name = file.path.replace(/^\//, '').replace(/\//g, '_');
      await expect(file.content).toMatchFileSnapshot(`__snapshots__/${distribution}/${role}/${name}`);
      expect(file.mode).toBe(0o600); // the join secret is in there
    }
  });

  it('renders identical bytes for an identical spec (no needless restarts)', () => {
    expect(driver.files(spec(distribution, 'join-cp'))).toEqual(driver.files(spec(distribution, 'join-cp')));
  });
});

describe.each(['k3s', 'rke2'] as const)('%s config against the upstream rules', (distribution) => {
  it.each(ROLES)('the %s node gets a token the distribution accepts and only options it knows', (role) => {
    const config = parse(driverFor(distribution).files(spec(distribution, role))[0].content) as Record<string, unknown>;
    if (role !== 'worker') expect(rulesFor(distribution).serverTokenProblem(String(config.token))).toBeUndefined();
    expect(rulesFor(distribution).configProblems(config)).toEqual([]);
  });
});

describe('k3s and rke2 specifics', () => {
  it('runs workers as agents with only agent options', () => {
    const k3s = driverFor('k3s');
    const worker = spec('k3s', 'worker');
    expect(k3s.serviceName(worker)).toBe('k3s-agent');
    expect(k3s.serviceName(spec('k3s', 'init'))).toBe('k3s');
    const config = parse(k3s.files(worker)[0].content);
    expect(config).not.toHaveProperty('disable');
    expect(config).not.toHaveProperty('cluster-cidr');
    expect(config['kubelet-arg']).toEqual(['max-pods=150']);
    expect(config['node-taint']).toEqual(['dedicated=pos:NoSchedule']);
  });

  it('joins rke2 on the supervisor port and k3s on the API server port', () => {
    expect(parse(driverFor('rke2').files(spec('rke2', 'worker'))[0].content).server).toBe('https://10.20.0.10:9345');
    expect(parse(driverFor('k3s').files(spec('k3s', 'worker'))[0].content).server).toBe('https://10.20.0.10:6443');
    expect(driverFor('rke2').serviceName(spec('rke2', 'join-cp'))).toBe('rke2-server');
  });

  it('leaves schedulable control-plane nodes untainted and passes a flannel backend', () => {
    const s = spec('k3s', 'init', { controlPlaneSchedulable: true, network: { cni: 'flannel', values: { backend: 'wireguard-native' } } });
    const config = parse(driverFor('k3s').files({ ...s, config: { 'tls-san': ['edge.shop-17.example', '10.20.0.10'] } })[0].content);
    expect(config['tls-san']).toEqual(['10.20.0.10', 'edge.shop-17.example']); // the endpoint first, once
    expect(config['node-taint']).toBeUndefined();
    expect(config['flannel-backend']).toBe('wireguard-native');
    expect(config['cluster-init']).toBe(true);
  });
});

describe('kubeadm specifics', () => {
  it('derives a bootstrap token in kubeadm format, the same on every node', () => {
    const token = bootstrapToken('K10-join-secret-7f3a9c');
    expect(token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(bootstrapToken('K10-join-secret-7f3a9c')).toBe(token);
    expect(bootstrapToken('another-secret')).not.toBe(token);
    expect(certificateKey('x')).toMatch(/^[a-f0-9]{64}$/);
  });

  it('picks the config API version by Kubernetes version', () => {
    expect(kubeadmApiVersion('v1.30.9')).toBe('kubeadm.k8s.io/v1beta3');
    expect(kubeadmApiVersion('1.31.0')).toBe('kubeadm.k8s.io/v1beta4');
    const docs = parseAllDocuments(driverFor('kubeadm').files(spec('kubeadm', 'worker', { version: 'v1.29.3' }))[0].content).map((d) => d.toJS());
    expect(docs[0].apiVersion).toBe('kubeadm.k8s.io/v1beta3');
    expect(docs[0].nodeRegistration.kubeletExtraArgs).toEqual({ 'node-labels': 'edgeplane.io/site=shop-17,topology.kubernetes.io/zone=backroom' });
  });

  it('writes an explicit empty taint list for schedulable control-plane nodes', () => {
    const docs = parseAllDocuments(driverFor('kubeadm').files(spec('kubeadm', 'init', { controlPlaneSchedulable: true }))[0].content).map((d) => d.toJS());
    expect(docs[0].nodeRegistration.taints).toEqual([]);
  });

  it('initializes once with init and joins with join', () => {
    const d = driverFor('kubeadm');
    expect(d.bootstrap?.(spec('kubeadm', 'init'))?.args).toEqual(['init', '--config', '/etc/edgeplane/kubeadm/kubeadm.yaml', '--upload-certs']);
    expect(d.bootstrap?.(spec('kubeadm', 'worker'))?.args).toEqual(['join', '--config', '/etc/edgeplane/kubeadm/kubeadm.yaml']);
    expect(d.serviceName(spec('kubeadm', 'worker'))).toBe('kubelet');
  });
});
