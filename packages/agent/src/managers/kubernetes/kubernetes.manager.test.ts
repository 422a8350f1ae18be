import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AddonsSpec, type Distribution, type HostSpec, KubernetesSpec } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { SimDevice } from '../../device/sim/sim-device.js';
import { SimKubernetes } from '../../device/sim/sim-kubernetes.js';
import { AddonsManager } from '../addons/addons.manager.js';
import type { ManagerContext } from '../manager.js';
import { KubernetesManager } from './kubernetes.manager.js';
import { kubernetesHealthCheck } from './kubernetes-health.js';

const VERSIONS: Record<Distribution, string> = { k3s: 'v1.30.4+k3s1', rke2: 'v1.31.1+rke2r1', kubeadm: 'v1.31.2' };
const ADMIN: Record<Distribution, string> = { k3s: '/etc/rancher/k3s/k3s.yaml', rke2: '/etc/rancher/rke2/rke2.yaml', kubeadm: '/etc/kubernetes/admin.conf' };
const ENDPOINT = 'https://10.30.0.5:6443';

let dir: string;
let registry: SimKubernetes;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k8s-manager-'));
  registry = new SimKubernetes();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Node {
  device: SimDevice;
  kubernetes: KubernetesManager;
  addons: AddonsManager;
  ctx: ManagerContext;
  events: string[];
}

function node(name: string): Node {
  const device = new SimDevice({ root: join(dir, name), hostname: name, kubernetes: registry });
  const events: string[] = [];
  const ctx: ManagerContext = {
    device,
    dataDir: join(dir, name, 'var/lib/edgeplane'),
    log: pino({ level: 'silent' }),
    emitEvent: (_type, reason) => events.push(reason),
    reportProgress: () => {},
    signal: new AbortController().signal,
  };
  return { device, kubernetes: new KubernetesManager(device, { readyTimeoutMs: 2_000, pollIntervalMs: 10 }), addons: new AddonsManager(device), ctx, events };
}

function hostSpec(distribution: Distribution, nodeName: string, role: 'init' | 'control-plane' | 'worker', over: Partial<KubernetesSpec> = {}): HostSpec {
  const init = role === 'init';
  const kubernetes = KubernetesSpec.parse({
    distribution,
    version: VERSIONS[distribution],
    cluster: 'store-42',
    nodeName,
    role: role === 'worker' ? 'worker' : 'control-plane',
    init,
    controlPlaneEndpoint: ENDPOINT,
    ...(init ? {} : { server: distribution === 'rke2' ? 'https://10.30.0.5:9345' : ENDPOINT }),
    token: 'join-secret-1',
    podCidr: '10.42.0.0/16',
    serviceCidr: '10.43.0.0/16',
    nodeLabels: { 'edgeplane.io/cluster': 'store-42' },
    // kubeadm brings no CNI: the profile names one and an add-on installs it.
    ...(distribution === 'kubeadm' ? { network: { cni: 'calico', values: {} } } : {}),
    ...over,
  });
  const addons = AddonsSpec.parse({
    items: [
      ...(distribution === 'kubeadm' ? [CALICO_ADDON] : []),
      {
        name: 'shop-app',
        manifest:
          'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  mode: edge\n',
      },
      {
        name: 'metrics',
        chart: { repo: 'https://charts.example.test/stable', name: 'metrics-server', version: '3.12.1', namespace: 'monitoring', values: { replicas: 1 } },
      },
    ],
  });
  return init ? { kubernetes, addons } : { kubernetes };
}

/** A CNI add-on: the calico-node DaemonSet (what the simulated cluster recognises as a running CNI). */
const CALICO_ADDON = {
  name: 'calico',
  manifest: 'apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: calico-node\n  namespace: kube-system\nspec: {}\n',
};

async function converge(n: Node, spec: HostSpec): Promise<void> {
  await n.kubernetes.prepare(spec.kubernetes, n.ctx, spec);
  await n.addons.prepare(spec.addons, n.ctx, spec);
  await n.kubernetes.apply(spec.kubernetes, n.ctx, spec);
  await n.addons.apply(spec.addons, n.ctx, spec);
}

describe.each<[Distribution, 'control-plane' | 'worker']>([
  ['k3s', 'worker'],
  ['rke2', 'control-plane'],
  ['kubeadm', 'worker'],
])('%s: init node and a joining %s on simulated devices', (distribution, joinerRole) => {
  it('provisions both nodes Ready, reports the kubeconfig from the init node and applies the add-ons', async () => {
    const a = node('a');
    const b = node('b');
    await converge(a, hostSpec(distribution, 'edge-a', 'init'));
    await converge(b, hostSpec(distribution, 'edge-b', joinerRole));

    const statusA = await a.kubernetes.status();
    expect(statusA).toMatchObject({ phase: 'Ready', ready: true, distribution, nodeName: 'edge-a', version: VERSIONS[distribution] });
    expect(parse(statusA.kubeconfig ?? '').clusters[0].cluster.server).toBe(ENDPOINT);
    const statusB = await b.kubernetes.status();
    expect(statusB).toMatchObject({ phase: 'Ready', ready: true, nodeName: 'edge-b' });
    expect(statusB.kubeconfig).toBeUndefined();
    expect(registry.nodeNames('10.30.0.5', 6443)).toEqual(['edge-a', 'edge-b']);
    expect(a.events).toContain('NodeReady');

    // Add-ons: from the init node only, server-side applied to the cluster.
    expect(await a.addons.status()).toMatchObject({
      phase: 'Applied',
      applied: [...(distribution === 'kubeadm' ? [{ name: 'calico', objects: 1 }] : []), { name: 'shop-app', objects: 2 }, { name: 'metrics', objects: 1 }],
    });
    // Init reads the files it was given: nothing is reported as not applied.
    expect(a.events).not.toContain('ConfigNotApplied');
    if (distribution === 'kubeadm') expect(a.events).toEqual(expect.arrayContaining(['ClusterInitialized', 'CniInstalled', 'NodeReady']));
    expect(await b.addons.status()).toBeUndefined();
    const api = registry.session({ server: ENDPOINT, token: parse(statusA.kubeconfig ?? '').users[0].user.token });
    const cm = api.get('v1', 'ConfigMap', 'settings', 'shop');
    expect(cm?.data).toEqual({ mode: 'edge' });
    expect((cm?.metadata.managedFields as { manager: string }[] | undefined)?.[0]?.manager).toBe('edgeplane');
    if (distribution === 'kubeadm') {
      // No helm-controller on kubeadm: the (simulated) helm CLI stored its release.
      const release = api.get('v1', 'Secret', 'sh.helm.release.v1.metrics.v1', 'monitoring');
      expect(release?.metadata.labels).toMatchObject({ owner: 'helm', status: 'deployed' });
    } else {
      const chart = api.get('helm.cattle.io/v1', 'HelmChart', 'metrics', 'kube-system');
      expect(chart?.spec).toMatchObject({
        repo: 'https://charts.example.test/stable',
        chart: 'metrics-server',
        version: '3.12.1',
        targetNamespace: 'monitoring',
      });
    }
  });

  it('does not restart the service for an identical configuration, and restarts it for a changed one', async () => {
    const a = node('a');
    const spec = hostSpec(distribution, 'edge-a', 'init');
    await converge(a, spec);
    const restart = vi.spyOn(a.device.services, 'restart');
    const start = vi.spyOn(a.device.services, 'start');
    const exec = vi.spyOn(a.device, 'exec');
    expect(await a.kubernetes.converged(spec.kubernetes)).toBe(true);
    expect(await a.addons.converged(spec.addons)).toBe(true);
    await converge(a, spec);
    expect(restart).not.toHaveBeenCalled();
    expect(start).not.toHaveBeenCalled();
    expect(exec).not.toHaveBeenCalled(); // kubeadm init ran once; helm is not run again for unchanged add-ons

    expect(a.events).not.toContain('ConfigNotApplied');
    const changed = hostSpec(distribution, 'edge-a', 'init', { nodeLabels: { 'edgeplane.io/cluster': 'store-42', tier: 'front' } });
    expect(await a.kubernetes.converged(changed.kubernetes)).toBe(false);
    await a.kubernetes.apply(changed.kubernetes, a.ctx, changed);
    if (distribution === 'kubeadm') {
      // kubeadm reads its file at init/join only: reported, not half-applied.
      expect(restart).not.toHaveBeenCalled();
      expect(a.events).toContain('ConfigNotApplied');
    } else {
      expect(restart).toHaveBeenCalledTimes(1);
      const admin = a.device.kubernetes(ADMIN[distribution]);
      expect((await admin.readNode('edge-a'))?.labels.tier).toBe('front');
    }
  });

  it('resets both nodes when the spec drops Kubernetes, and the same hosts then form a new cluster', async () => {
    const a = node('a');
    const b = node('b');
    await converge(a, hostSpec(distribution, 'edge-a', 'init'));
    await converge(b, hostSpec(distribution, 'edge-b', joinerRole));
    const images = join(a.device.root, `var/lib/rancher/${distribution}/agent/images/airgap.tar`);
    if (distribution !== 'kubeadm') {
      await mkdir(dirname(images), { recursive: true });
      await writeFile(images, 'image tarball');
    }
    expect(await a.kubernetes.converged(undefined)).toBe(false);

    for (const n of [b, a]) await converge(n, {});
    expect(registry.nodeNames('10.30.0.5', 6443)).toEqual([]);
    expect(await a.kubernetes.converged(undefined)).toBe(true);
    expect(await a.kubernetes.status()).toMatchObject({ phase: 'Pending' });
    expect(a.events).toContain('NodeReset');
    const config = { k3s: 'etc/rancher/k3s/config.yaml', rke2: 'etc/rancher/rke2/config.yaml', kubeadm: 'etc/edgeplane/kubeadm/kubeadm.yaml' }[distribution];
    await expect(readFile(join(a.device.root, config))).rejects.toThrow(/ENOENT/);
    if (distribution !== 'kubeadm') expect(await readFile(images, 'utf8')).toBe('image tarball'); // air-gap images stay

    const again = (name: string, role: 'init' | 'control-plane' | 'worker') =>
      hostSpec(distribution, name, role, { token: 'join-secret-2', cluster: 'store-43' });
    await converge(a, again('edge-a', 'init'));
    await converge(b, again('edge-b', joinerRole));
    expect(registry.nodeNames('10.30.0.5', 6443)).toEqual(['edge-a', 'edge-b']);
    expect(await a.addons.status()).toMatchObject({ phase: 'Applied' });
    const token = parse((await a.kubernetes.status()).kubeconfig ?? '').users[0].user.token;
    expect(registry.session({ server: ENDPOINT, token }).get('v1', 'ConfigMap', 'settings', 'shop')).toBeDefined();
  });

  it('reports a refused join with a wrong token as a non-retryable failure', async () => {
    await converge(node('a'), hostSpec(distribution, 'edge-a', 'init'));
    const b = node('b');
    const spec = hostSpec(distribution, 'edge-b', joinerRole, { token: 'not-the-secret' });
    await expect(converge(b, spec)).rejects.toMatchObject({ detail: { phase: 'apply', component: 'kubernetes', retryable: false } });
    const status = await b.kubernetes.status();
    expect(status).toMatchObject({ phase: 'Failed', ready: false, error: { retryable: false } });
    expect(status.message).toMatch(/401 Unauthorized|invalid for this cluster/);
    expect(b.events).toContain('JoinRefused');
    expect(registry.nodeNames('10.30.0.5', 6443)).toEqual(['edge-a']);
  });
});

describe.each<Distribution>(['k3s', 'rke2', 'kubeadm'])('%s: a control-plane node leaving the cluster', (distribution) => {
  it('deletes its Node object and its etcd member leaves', async () => {
    const a = node('a');
    const b = node('b');
    const c = node('c');
    await converge(a, hostSpec(distribution, 'edge-a', 'init'));
    await converge(b, hostSpec(distribution, 'edge-b', 'control-plane'));
    await converge(c, hostSpec(distribution, 'edge-c', 'worker'));
    expect(registry.inspect(ENDPOINT)?.etcdMembers).toEqual(['edge-a', 'edge-b']);
    for (const n of [b, c]) await converge(n, {});
    const seen = registry.inspect(ENDPOINT);
    expect(seen?.nodes.map((n) => n.name)).toEqual(['edge-a']);
    expect(seen?.etcdMembers).toEqual(['edge-a']);
    expect(b.events).toEqual(expect.arrayContaining(['NodeDrained', 'NodeDeleted', 'NodeReset']));
  });
});

describe('kubeadm: certificates and CNI', () => {
  it('a control-plane join after the uploaded certificates expired retries until the init node uploads them again', async () => {
    const a = node('a');
    const init = hostSpec('kubeadm', 'edge-a', 'init');
    await converge(a, init);
    await registry.ageUploadedCerts(ENDPOINT, 3 * 60 * 60_000);
    const b = node('b');
    const join = hostSpec('kubeadm', 'edge-b', 'control-plane');
    await expect(converge(b, join)).rejects.toMatchObject({ detail: { retryable: true } });
    expect((await b.kubernetes.status()).message).toMatch(/kubeadm-certs" was not found/);
    expect(b.events).not.toContain('JoinRefused');

    // The server asks the init node to upload them again; the same join spec then succeeds.
    const upload: HostSpec = { ...init, kubernetes: { ...init.kubernetes!, uploadCerts: 'edge-b@1' } };
    expect(await a.kubernetes.converged(upload.kubernetes)).toBe(false);
    await converge(a, upload);
    expect(a.events).toContain('CertificatesUploaded');
    expect(await a.kubernetes.converged(upload.kubernetes)).toBe(true);
    await converge(b, join);
    expect(await b.kubernetes.status()).toMatchObject({ phase: 'Ready' });
  });

  it('refuses a kubeadm spec without a CNI add-on in prepare (nodes would never be Ready)', async () => {
    const a = node('a');
    const spec = hostSpec('kubeadm', 'edge-a', 'init', { network: undefined });
    await expect(a.kubernetes.prepare(spec.kubernetes, a.ctx, spec)).rejects.toMatchObject({
      detail: { phase: 'prepare', retryable: false, message: expect.stringMatching(/kubeadm brings no CNI/) },
    });
    const k3s = hostSpec('k3s', 'edge-a', 'init', { network: { cni: 'cilium', values: {} } });
    await expect(a.kubernetes.prepare(k3s.kubernetes, a.ctx, k3s)).rejects.toMatchObject({
      detail: { message: expect.stringMatching(/k3s does not bring the CNI cilium: the profile needs an add-on named cilium/) },
    });
  });
});

describe('post-boot health check for the os manager', () => {
  it('passes for a device in no cluster or a Ready node, and says why a node is not Ready', async () => {
    const a = node('a');
    const check = kubernetesHealthCheck(a.device, { timeoutMs: 100, pollIntervalMs: 10 });
    expect(await check({ slot: 'B' })).toBeUndefined();
    await converge(a, hostSpec('k3s', 'edge-a', 'init'));
    expect(await check({ slot: 'B' })).toBeUndefined();
    await a.device.services.stop('k3s');
    expect(await check({ slot: 'B' })).toMatch(/node edge-a is not Ready after boot: Kubelet stopped posting node status/);
  });
});

describe('KubernetesManager validation', () => {
  it('refuses an unsupported version in prepare without touching the device', async () => {
    const a = node('a');
    const spec = hostSpec('k3s', 'edge-a', 'init', { version: 'v1.19.0+k3s1' });
    await expect(a.kubernetes.prepare(spec.kubernetes, a.ctx, spec)).rejects.toMatchObject({ detail: { phase: 'prepare', retryable: false } });
    await expect(readFile(join(a.device.root, 'etc/rancher/k3s/config.yaml'))).rejects.toThrow(/ENOENT/);
  });

  it('retries a join whose server is unreachable, and fails health when the node never becomes Ready', async () => {
    const b = node('b');
    const spec = hostSpec('k3s', 'edge-b', 'worker');
    await expect(converge(b, spec)).rejects.toMatchObject({ detail: { retryable: true } });
    expect((await b.kubernetes.status()).message).toMatch(/connection refused/);
  });

  it('rejects add-ons with invalid manifests in prepare', async () => {
    const a = node('a');
    const spec: HostSpec = { ...hostSpec('k3s', 'edge-a', 'init'), addons: { items: [{ name: 'bad', manifest: 'kind: ConfigMap\n' }] } };
    await expect(a.addons.prepare(spec.addons, a.ctx, spec)).rejects.toMatchObject({ detail: { component: 'addons', retryable: false } });
  });
});
