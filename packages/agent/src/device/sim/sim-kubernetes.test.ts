import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Distribution, KubernetesSpec } from '@edgeplane/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { driverFor } from '../../managers/kubernetes/drivers.js';
import { nodeFiles, writeFiles } from '../../managers/kubernetes/node-files.js';
import { ExecError } from '../exec.js';
import { KubernetesApiError } from '../kube-client.js';
import { ServiceError } from '../services.js';
import { SimDevice } from './sim-device.js';
import { SimKubernetes } from './sim-kubernetes.js';

const VERSIONS: Record<Distribution, string> = { k3s: 'v1.30.4+k3s1', rke2: 'v1.30.4+rke2r1', kubeadm: 'v1.30.4' };

let dir: string;
let registry: SimKubernetes;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sim-k8s-'));
  registry = new SimKubernetes();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A CNI's DaemonSet, as a network add-on's manifest applies it. */
const CALICO = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'calico-node', namespace: 'kube-system' }, spec: {} };

function device(name: string, reg = registry): SimDevice {
  return new SimDevice({ root: join(dir, name), hostname: name, kubernetes: reg });
}

function spec(distribution: Distribution, nodeName: string, over: Partial<KubernetesSpec> = {}): KubernetesSpec {
  const init = over.init ?? false;
  return KubernetesSpec.parse({
    distribution,
    version: VERSIONS[distribution],
    cluster: 'c1',
    nodeName,
    role: 'control-plane',
    init,
    controlPlaneEndpoint: 'https://10.9.0.1:6443',
    ...(init ? {} : { server: distribution === 'rke2' ? 'https://10.9.0.1:9345' : 'https://10.9.0.1:6443' }),
    token: 'right-secret',
    podCidr: '10.42.0.0/16',
    serviceCidr: '10.43.0.0/16',
    ...over,
  });
}

/** Writes the node's configuration with the real driver, then starts its service / runs kubeadm as the manager would. */
async function bring(d: SimDevice, s: KubernetesSpec): Promise<void> {
  const driver = driverFor(s.distribution);
  await writeFiles(d.files, nodeFiles(driver, s));
  const cmd = driver.bootstrap?.(s);
  if (cmd) await d.exec(cmd.command, cmd.args);
  await d.services.start(driver.serviceName(s));
}

describe('simulated k3s', () => {
  it('initializes a cluster, writes an admin kubeconfig naming the endpoint, and lets a node with the right token join', async () => {
    const a = device('a');
    await bring(a, spec('k3s', 'node-a', { init: true, nodeLabels: { zone: 'front' }, controlPlaneSchedulable: false }));
    const kubeconfig = await readFile(join(a.root, 'etc/rancher/k3s/k3s.yaml'), 'utf8');
    expect(kubeconfig).toContain('SIMULATED');
    expect(parse(kubeconfig).clusters[0].cluster.server).toBe('https://10.9.0.1:6443');

    const admin = a.kubernetes('/etc/rancher/k3s/k3s.yaml');
    const nodeA = await admin.readNode('node-a');
    expect(nodeA).toMatchObject({
      ready: true,
      kubeletVersion: 'v1.30.4+k3s1',
      taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }],
    });
    expect(nodeA?.labels).toMatchObject({ zone: 'front', 'node-role.kubernetes.io/control-plane': 'true', 'kubernetes.io/hostname': 'node-a' });

    const b = device('b');
    await bring(b, spec('k3s', 'node-b', { role: 'worker', nodeTaints: [{ key: 'gpu', value: 'yes', effect: 'NoExecute' }] }));
    expect(await b.services.isActive('k3s-agent')).toBe(true);
    const nodeB = await b.kubernetes('/var/lib/rancher/k3s/agent/kubelet.kubeconfig').readNode('node-b');
    expect(nodeB).toMatchObject({ ready: true, taints: [{ key: 'gpu', value: 'yes', effect: 'NoExecute' }] });
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a', 'node-b']);
    const token = parse(kubeconfig).users[0].user.token;
    expect(registry.session({ server: 'https://10.9.0.1:6443', token }).get('v1', 'Node', 'node-b')?.status).toMatchObject({
      conditions: [{ type: 'Ready', status: 'True' }],
      nodeInfo: { kubeletVersion: 'v1.30.4+k3s1' },
    });
    // The Node authorizer: a kubelet reads only its own Node.
    await expect(b.kubernetes('/var/lib/rancher/k3s/agent/kubelet.kubeconfig').readNode('node-a')).rejects.toMatchObject({ status: 403 });
  });

  it('refuses a join with a wrong token (not retryable) and never registers the node', async () => {
    await bring(device('a'), spec('k3s', 'node-a', { init: true }));
    const b = device('b');
    const err = await bring(b, spec('k3s', 'node-b', { role: 'worker', token: 'wrong' })).catch((e) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err).toMatchObject({ retryable: false });
    expect(err.message).toMatch(/401 Unauthorized/);
    expect(await b.services.isActive('k3s-agent')).toBe(false);
    expect(await b.services.failure('k3s-agent')).toMatch(/401/);
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a']);
  });

  it('refuses a join to an address that is not the cluster endpoint (retryable: nothing listens there)', async () => {
    await bring(device('a'), spec('k3s', 'node-a', { init: true }));
    const err = await bring(device('b'), spec('k3s', 'node-b', { role: 'worker', server: 'https://10.9.0.77:6443' })).catch((e) => e);
    expect(err).toMatchObject({ retryable: true });
    expect(err.message).toMatch(/connection refused/);
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a']);
  });

  it('goes NotReady when the service stops and Ready again after a simulated power cycle', async () => {
    const a = device('a');
    await bring(a, spec('k3s', 'node-a', { init: true }));
    const admin = a.kubernetes('/etc/rancher/k3s/k3s.yaml');
    await a.services.stop('k3s');
    expect(await admin.readNode('node-a')).toMatchObject({ ready: false });
    await a.services.start('k3s');
    await a.services.enable('k3s');
    await a.services.powerCycle();
    expect(await admin.readNode('node-a')).toMatchObject({ ready: true });
  });

  it('refuses a second cluster-init on the same endpoint with another token', async () => {
    const a = device('a');
    await bring(a, spec('k3s', 'node-a', { init: true }));
    await writeFiles(a.files, nodeFiles(driverFor('k3s'), spec('k3s', 'node-a', { init: true, token: 'changed' })));
    await expect(a.services.restart('k3s')).rejects.toThrow(/different token/);
  });
});

describe('simulated rke2 and kubeadm', () => {
  it('joins rke2 servers on the supervisor port only', async () => {
    await bring(device('a'), spec('rke2', 'node-a', { init: true }));
    await bring(device('b'), spec('rke2', 'node-b'));
    await expect(bring(device('c'), spec('rke2', 'node-c', { server: 'https://10.9.0.1:6443' }))).rejects.toThrow(/connection refused/);
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a', 'node-b']);
  });

  it('runs kubeadm init/join from the written config and refuses a wrong bootstrap token', async () => {
    const a = device('a');
    await bring(a, spec('kubeadm', 'node-a', { init: true, nodeLabels: { tier: 'edge' } }));
    const admin = a.kubernetes('/etc/kubernetes/admin.conf');
    // kubeadm brings no CNI: registered, NotReady, until a network add-on runs.
    expect(await admin.readNode('node-a')).toMatchObject({ ready: false, message: expect.stringMatching(/cni plugin not initialized/) });
    await admin.apply(CALICO, 'edgeplane');
    const node = await admin.readNode('node-a');
    expect(node).toMatchObject({ ready: true, kubeletVersion: 'v1.30.4', labels: { tier: 'edge', 'node-role.kubernetes.io/control-plane': '' } });
    expect(node?.taints).toEqual([]); // controlPlaneSchedulable defaults to true: an explicit empty taint list

    await bring(device('b'), spec('kubeadm', 'node-b', { role: 'worker' }));
    const err = await bring(device('c'), spec('kubeadm', 'node-c', { role: 'worker', token: 'wrong' })).catch((e) => e);
    expect(err).toBeInstanceOf(ExecError);
    expect(err).toMatchObject({ retryable: false });
    expect(err.message).toMatch(/is invalid for this cluster/);
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a', 'node-b']);
    await expect(device('d').exec('kubectl', ['get', 'nodes'])).rejects.toThrow(/not available on a simulated device/);
  });
});

describe('simulated API objects', () => {
  it('stores objects with server-side apply semantics and refuses unknown kinds and namespaces', async () => {
    const a = device('a');
    await bring(a, spec('kubeadm', 'node-a', { init: true }));
    const api = a.kubernetes('/etc/kubernetes/admin.conf');
    const cm = (data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'shop' }, data });
    await expect(api.apply(cm({ a: '1' }), 'edgeplane')).rejects.toMatchObject({ status: 404, message: 'namespaces "shop" not found' });
    await api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, 'edgeplane');
    const first = await api.apply(cm({ a: '1', b: '2' }), 'edgeplane');
    const same = await api.apply(cm({ a: '1', b: '2' }), 'edgeplane');
    expect(same.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    await api.apply(cm({ c: '3' }), 'someone-else');
    // A field edgeplane stops setting goes away; another manager's field stays.
    const after = await api.apply(cm({ a: '1' }), 'edgeplane');
    expect(after.data).toEqual({ a: '1', c: '3' });
    expect((after.metadata.managedFields as { manager: string }[]).map((m) => m.manager)).toEqual(['someone-else', 'edgeplane']);
    // kubeadm clusters have no helm-controller CRDs.
    await expect(
      api.apply({ apiVersion: 'helm.cattle.io/v1', kind: 'HelmChart', metadata: { name: 'x', namespace: 'kube-system' } }, 'edgeplane'),
    ).rejects.toThrow(/no matches for kind "HelmChart"/);
    await expect(a.kubernetes('/etc/kubernetes/missing.conf').readNode('node-a')).rejects.toBeInstanceOf(KubernetesApiError);
  });

  it('keeps clusters in a state directory across a simulator restart', async () => {
    const stateDir = join(dir, 'clusters');
    const first = new SimKubernetes();
    first.configure({ stateDir });
    const a = device('a', first);
    await bring(a, spec('k3s', 'node-a', { init: true }));
    await a.kubernetes('/etc/rancher/k3s/k3s.yaml').apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kept' }, data: {} }, 'edgeplane');

    const second = new SimKubernetes();
    second.configure({ stateDir });
    const again = device('a', second);
    const admin = again.kubernetes('/etc/rancher/k3s/k3s.yaml');
    expect(await admin.readNode('node-a')).toMatchObject({ ready: false }); // nothing runs after a restart
    await again.services.restart('k3s');
    expect(await admin.readNode('node-a')).toMatchObject({ ready: true });
    expect(second.nodeNames('10.9.0.1', 6443)).toEqual(['node-a']);
  });
});

describe('strict simulation: what upstream refuses', () => {
  it.each(['k3s', 'rke2'] as const)('%s: a server refuses a bootstrap-format token with the upstream message (pkg/util/token.go)', async (distribution) => {
    const a = device('a');
    const err = await bring(a, spec(distribution, 'node-a', { init: true, token: 'abcdef.0123456789abcdef' })).catch((e) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err).toMatchObject({ retryable: false });
    expect(err.message).toContain('failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>');
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual([]);
  });

  it('k3s skips an unknown config key with upstream warning and refuses a value of the wrong type', async () => {
    const a = device('a');
    await bring(a, spec('k3s', 'node-a', { init: true, config: { 'kublet-arg': 'max-pods=10' } }));
    expect(await a.services.journal('k3s')).toContain('level=warning msg="Unknown flag --kublet-arg found in config.yaml, skipping"');
    const b = device('b');
    const err = await bring(b, spec('k3s', 'node-b', { role: 'worker', config: { 'lb-server-port': 'six' } })).catch((e) => e);
    expect(err.message).toMatch(/invalid value for --lb-server-port/);
  });

  it('k3s with flannel-backend none keeps nodes NotReady until a CNI add-on runs', async () => {
    const a = device('a');
    await bring(a, spec('k3s', 'node-a', { init: true, network: { cni: 'calico', values: {} } }));
    const admin = a.kubernetes('/etc/rancher/k3s/k3s.yaml');
    expect(await admin.readNode('node-a')).toMatchObject({ ready: false, message: expect.stringMatching(/NetworkPluginNotReady/) });
    await admin.apply(CALICO, 'edgeplane');
    expect(await admin.readNode('node-a')).toMatchObject({ ready: true });
    expect(registry.inspect('https://10.9.0.1:6443')?.cni).toBe('calico');
  });

  it('kubeadm refuses a v1beta4 config on a 1.30 binary, and unknown flags', async () => {
    const a = device('a');
    const s = spec('kubeadm', 'node-a', { init: true });
    const driver = driverFor('kubeadm');
    const files = nodeFiles(driver, s).map((f) => (f.path.endsWith('kubeadm.yaml') ? { ...f, content: f.content.replaceAll('v1beta3', 'v1beta4') } : f));
    await writeFiles(a.files, files);
    await expect(a.exec('kubeadm', ['init', '--config', '/etc/edgeplane/kubeadm/kubeadm.yaml'])).rejects.toMatchObject({
      retryable: false,
      message: expect.stringMatching(/no kind "InitConfiguration" is registered for version "kubeadm.k8s.io\/v1beta4"/),
    });
    await expect(a.exec('kubeadm', ['init', '--config', '/etc/edgeplane/kubeadm/kubeadm.yaml', '--pod-network-cidr', 'x'])).rejects.toThrow(
      /unknown flag: --pod-network-cidr/,
    );
  });

  it('kubeadm: a control-plane join after the uploaded certificates expired fails (retryable) until they are uploaded again', async () => {
    const a = device('a');
    await bring(a, spec('kubeadm', 'node-a', { init: true }));
    await a.kubernetes('/etc/kubernetes/admin.conf').apply(CALICO, 'edgeplane');
    await registry.ageUploadedCerts('https://10.9.0.1:6443', 2 * 60 * 60_000 + 1);
    const err = await bring(device('b'), spec('kubeadm', 'node-b')).catch((e) => e);
    expect(err).toBeInstanceOf(ExecError);
    expect(err).toMatchObject({ retryable: true });
    expect(err.message).toMatch(/Secret "kubeadm-certs" was not found .* might have expired/);
    // A worker needs no certificates.
    await bring(device('w'), spec('kubeadm', 'node-w', { role: 'worker' }));
    await a.exec('kubeadm', ['init', 'phase', 'upload-certs', '--upload-certs', '--config', '/etc/edgeplane/kubeadm/kubeadm.yaml']);
    await bring(device('b'), spec('kubeadm', 'node-b'));
    expect(registry.inspect('https://10.9.0.1:6443')?.etcdMembers).toEqual(['node-a', 'node-b']);
  });

  it('k3s: killall leaves the Node and its etcd member; deleting the Node removes both', async () => {
    const a = device('a');
    await bring(a, spec('k3s', 'node-a', { init: true }));
    const b = device('b');
    await bring(b, spec('k3s', 'node-b'));
    await b.exec('k3s-killall.sh', []);
    const seen = registry.inspect('https://10.9.0.1:6443');
    expect(seen?.etcdMembers).toEqual(['node-a', 'node-b']);
    expect(seen?.nodes.find((n) => n.name === 'node-b')).toMatchObject({ ready: false });
    await a.kubernetes('/etc/rancher/k3s/k3s.yaml').deleteNode?.('node-b');
    expect(registry.inspect('https://10.9.0.1:6443')).toMatchObject({ etcdMembers: ['node-a'] });
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a']);
  });

  it('kubeadm: reset removes the etcd member but not the Node; a kubelet may delete only its own Node', async () => {
    const a = device('a');
    await bring(a, spec('kubeadm', 'node-a', { init: true }));
    const b = device('b');
    await bring(b, spec('kubeadm', 'node-b'));
    await expect(b.kubernetes('/etc/kubernetes/kubelet.conf').deleteNode?.('node-a')).rejects.toMatchObject({ status: 403 });
    await b.exec('kubeadm', ['reset', '--force']);
    expect(registry.inspect('https://10.9.0.1:6443')?.etcdMembers).toEqual(['node-a']);
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a', 'node-b']);
    await a.kubernetes('/etc/kubernetes/admin.conf').deleteNode?.('node-b');
    expect(registry.nodeNames('10.9.0.1', 6443)).toEqual(['node-a']);
  });
});
