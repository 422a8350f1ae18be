import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simKubernetes } from '@edgeplane/agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { type SimFleet, startSimFleet } from '../support/sim-fleet.js';

// Native clusters of 3 control planes + 2 workers on each distribution, against the STRICT simulated
// Kubernetes (packages/agent/src/device/sim: upstream's token formats, no Ready node without a CNI,
// kubeadm's 2 h uploaded certificates, etcd members that leave only the way upstream removes them):
// create, scale out, scale in a control plane (its Node object and etcd member gone), upgrade.

const VERSIONS = {
  k3s: ['v1.30.4+k3s1', 'v1.31.1+k3s1'],
  rke2: ['v1.30.4+rke2r1', 'v1.31.1+rke2r1'],
  kubeadm: ['v1.30.4', 'v1.31.2'],
} as const;
type Distribution = keyof typeof VERSIONS;

/** The CNI add-on a kubeadm profile needs (SIMULATED: calico's DaemonSet is what the simulator recognises as a running CNI). */
const CALICO = { name: 'calico', manifest: 'apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: calico-node, namespace: kube-system}\nspec: {}\n' };

describe('Kubernetes fidelity: 3 control planes + 2 workers per distribution on the strict simulator', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let sim: SimFleet | undefined;
  let dir: string;
  let free: string[] = [];
  const digests: Record<string, string> = {};

  const cluster = async (name: string) => (await t.api('GET', `/api/v1/clusters/${name}`)).body;
  const events = async (kind: string, name: string) =>
    (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=${kind},involvedObject.name=${name}&limit=500`)).body.items.map(
      (e: any) => e.spec.reason as string,
    );
  const converged = (name: string, revision: number, nodes: number) =>
    waitFor(async () => {
      const c = await cluster(name);
      const ok =
        c.status?.phase === 'Running' &&
        c.status.observedGeneration === c.metadata.generation &&
        c.status.profileRevision === revision &&
        c.status.nodes.length === nodes;
      return ok && c;
    }, 90_000);
  const profile = (name: string, distribution: Distribution, image: string, version: string) => ({
    metadata: { name },
    spec: {
      layers: {
        os: { image: `${registry.host}/edge/os:${image}` },
        kubernetes: { distribution, version },
        ...(distribution === 'kubeadm' ? { network: { cni: 'calico' }, addons: [CALICO] } : {}),
      },
    },
  });
  const patchNodes = async (name: string, nodes: { host: string; role: string }[]) => {
    const r = await t.api('PATCH', `/api/v1/clusters/${name}`, { spec: { nodes } }, { contentType: 'application/merge-patch+json' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-k8s-fidelity-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    // Each image carries the distributions' binaries (SIMULATED: small files stating their version,
    // which is what the simulated kubelet reports): 1.0.0 the first versions, 2.0.0 the next.
    for (const [image, i] of [
      ['1.0.0', 0],
      ['2.0.0', 1],
    ] as const) {
      const files = {
        'usr/local/bin/k3s': `k3s version ${VERSIONS.k3s[i]}\n`,
        'usr/local/bin/rke2': `rke2 version ${VERSIONS.rke2[i]}\n`,
        'usr/local/bin/kubelet': `Kubernetes ${VERSIONS.kubeadm[i]}\n`,
      };
      digests[image] = await pushOsImage(registry, join(dir, 'layout'), image, files);
    }
    sim = await startSimFleet(t, { sites: 21, dataDir: join(dir, 'sim'), ready: true, timeoutMs: 60_000 });
    free = [...sim.hosts];
  }, 120_000);
  afterAll(async () => {
    await sim?.fleet.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['k3s', 'rke2', 'kubeadm'] as const)(
    '%s: create, scale out, scale in a control plane (Node and etcd member gone), upgrade',
    async (distribution) => {
      const name = `fid-${distribution}`;
      const [v1, v2] = VERSIONS[distribution];
      const hosts = free.splice(0, 7);
      const [cp1, cp2, cp3, w1, w2, cp4, cp5] = hosts;
      const created = await t.api('POST', '/api/v1/clusterprofiles', profile(`${name}-p`, distribution, '1.0.0', v1));
      expect(created.status, JSON.stringify(created.body)).toBe(201);

      // Create: 3 control planes + 2 workers.
      const nodes = [
        { host: cp1, role: 'control-plane' },
        { host: cp2, role: 'control-plane' },
        { host: cp3, role: 'control-plane' },
        { host: w1, role: 'worker' },
        { host: w2, role: 'worker' },
      ];
      // rke2 serves its endpoint on a VIP (kube-vip add-on); k3s and kubeadm use the init node's address.
      const vip = distribution === 'rke2' ? { address: '10.99.0.10', image: `${registry.host}/kube-vip/kube-vip:v0.8.9` } : undefined;
      if (distribution === 'kubeadm') {
        // kubeadm needs the VIP before init: refused, nothing written.
        const spec = { profile: { name: `${name}-p`, revision: 1 }, nodes, vip: { address: '10.99.0.11', image: 'reg.lab/kube-vip:v0.8.9' } };
        const refused = await t.api('POST', '/api/v1/clusters', { metadata: { name }, spec });
        expect(refused.status).toBe(400);
        expect(refused.body.error).toMatchObject({ code: 'ValidationFailed', message: expect.stringMatching(/kubeadm needs the VIP before kubeadm init/) });
        expect((await t.api('GET', `/api/v1/clusters/${name}`)).status).toBe(404);
        for (const h of nodes) expect((await t.api('GET', `/api/v1/edgehosts/${h.host}`)).body.status.state).toBe('ready');
      }
      const spec = { profile: { name: `${name}-p`, revision: 1 }, nodes, ...(vip ? { vip } : {}) };
      const r = await t.api('POST', '/api/v1/clusters', { metadata: { name }, spec });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      const running = await converged(name, 1, 5);
      const endpoint = running.status.controlPlaneEndpoint as string;
      if (vip) {
        expect(running.status).toMatchObject({ controlPlaneEndpoint: 'https://10.99.0.10:6443', controlPlaneEndpointFrom: 'spec.vip (kube-vip)' });
        const res = await fetch(`${t.url}/api/v1/clusters/${name}/kubeconfig`, { headers: { authorization: `Bearer ${t.admin}` } });
        const kubeconfig = parse(await res.text());
        const api = simKubernetes.session({ server: endpoint, token: kubeconfig.users[0].user.token });
        const ds = api.get('apps/v1', 'DaemonSet', 'kube-vip-ds', 'kube-system') as any;
        expect(ds.spec.template.spec.containers[0].env).toEqual(expect.arrayContaining([{ name: 'address', value: '10.99.0.10' }]));
      } else {
        expect(running.status.controlPlaneEndpointFrom).toMatch(/^init node address: host /);
      }
      const k = simKubernetes.inspect(endpoint)!;
      expect(k.etcdMembers.sort()).toEqual([cp1, cp2, cp3].sort());
      expect(k.nodes.every((n) => n.ready)).toBe(true);
      // k3s/rke2 run their bundled CNI; kubeadm's came from the calico add-on before the init node waited for Ready.
      expect(k.cni).toBe({ k3s: 'flannel', rke2: 'canal', kubeadm: 'calico' }[distribution]);
      // The init node's events: no spurious ConfigNotApplied after kubeadm init.
      expect(await events('EdgeHost', cp1)).not.toContain('ConfigNotApplied');

      // Scale out by two control planes. kubeadm: hours after init, the uploaded certificates are gone.
      if (distribution === 'kubeadm') await simKubernetes.ageUploadedCerts(endpoint, 3 * 60 * 60_000);
      await patchNodes(name, [...nodes, { host: cp4, role: 'control-plane' }, { host: cp5, role: 'control-plane' }]);
      await converged(name, 1, 7);
      expect(simKubernetes.inspect(endpoint)!.etcdMembers.sort()).toEqual([cp1, cp2, cp3, cp4, cp5].sort());
      if (distribution === 'kubeadm') expect(await events('EdgeHost', cp1)).toContain('CertificatesUploaded');

      // Scale in: two control planes leave; their Node objects and etcd members go with them.
      const kept = [...nodes.slice(0, 1), nodes[2], ...nodes.slice(3), { host: cp5, role: 'control-plane' }];
      await patchNodes(name, kept);
      await converged(name, 1, 5);
      const after = await waitFor(() => {
        const s = simKubernetes.inspect(endpoint);
        return s && s.nodes.length === 5 && s.etcdMembers.length === 3 && s;
      }, 30_000);
      expect(after.nodes.map((n) => n.name).sort()).toEqual([cp1, cp3, w1, w2, cp5].sort());
      expect(after.etcdMembers.sort()).toEqual([cp1, cp3, cp5].sort());
      // The endpoint is the init node's address: that node may not leave.
      const refused = await t.api(
        'PATCH',
        `/api/v1/clusters/${name}`,
        { spec: { nodes: kept.filter((n) => n.host !== cp1) } },
        { contentType: 'application/merge-patch+json' },
      );
      expect(refused.status).toBe(409);
      expect(simKubernetes.inspect(endpoint)!.nodes).toHaveLength(5);

      // Upgrade: a new OS image carrying a new Kubernetes version, node by node.
      const put = await t.api('PUT', `/api/v1/clusterprofiles/${name}-p`, profile(`${name}-p`, distribution, '2.0.0', v2));
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      const patched = await t.api(
        'PATCH',
        `/api/v1/clusters/${name}`,
        { spec: { profile: { name: `${name}-p`, revision: 2 } } },
        { contentType: 'application/merge-patch+json' },
      );
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      const upgraded = await converged(name, 2, 5);
      for (const n of upgraded.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'], kubernetesVersion: v2 });
      const final = simKubernetes.inspect(endpoint)!;
      expect(final.etcdMembers.sort()).toEqual([cp1, cp3, cp5].sort());
      expect(final.nodes.every((n) => n.ready && n.kubeletVersion === v2)).toBe(true);
    },
    300_000,
  );
});
