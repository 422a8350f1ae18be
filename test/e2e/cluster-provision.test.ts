import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/device.js';
import { pushOciLayout, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * Cluster provisioning end to end: a real OCI registry holding two OS images built by the test, a real server,
 * and a simulated fleet (real agents; SimDevice slots + grub-editenv; simulated Kubernetes).
 * Each cluster must reach Running with every node Ready and its booted slot holding the pinned digest.
 */
describe('cluster provisioning on simulated hosts', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  const digests: Record<string, string> = {};
  let tamperedLayer = { digest: '', size: 0 };
  let free: string[] = [];

  const host = async (name: string) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;
  const take = (n: number) => free.splice(0, n);
  const cluster = async (name: string) => (await t.api('GET', `/api/v1/clusters/${name}`)).body;
  const CALICO = { name: 'calico', manifest: 'apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: calico-node, namespace: kube-system}\nspec: {}\n' };
  const profile = (name: string, distribution: string, version: string, image: string) => ({
    apiVersion: 'edgeplane.io/v1',
    kind: 'ClusterProfile',
    metadata: { name },
    spec: {
      layers: {
        os: { image },
        kubernetes: { distribution, version },
        // kubeadm brings no CNI: the profile names one and an add-on installs it (simulated: calico's DaemonSet).
        ...(distribution === 'kubeadm' ? { network: { cni: 'calico' }, addons: [CALICO] } : {}),
      },
    },
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-provision-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    for (const version of ['1.0.0', '2.0.0', '3.0.0']) {
      const written = await oci.writeOsImage({ layoutDir: join(dir, 'layout'), tag: version, name: 'Edgeplane OS', version });
      digests[version] = await pushOciLayout(join(dir, 'layout'), `${registry.host}/edge/os:${version}`);
      if (version === '3.0.0') tamperedLayer = written.layer;
    }
    // Corrupt image 3's layer inside the registry's own storage (same size, other bytes): the registry serves it as is.
    const hex = tamperedLayer.digest.slice('sha256:'.length);
    await writeFile(join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'), Buffer.alloc(tamperedLayer.size, 0x42));
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: t.url,
      token,
      sites: 11,
      dataDir: join(dir, 'sim'),
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 20, backoffCapMs: 300 },
    });
    await fleet.waitUntilConnected(20_000);
    free = await waitFor(async () => {
      const items = (await t.api('GET', '/api/v1/edgehosts')).body.items;
      return items.filter((h: any) => h.status.connectivity === 'online' && h.status.state === 'ready').length === 11 && items.map((h: any) => h.metadata.name);
    }, 20_000);
  });
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  const cases = [
    { name: 'k3s-single', distribution: 'k3s', version: 'v1.30.4+k3s1', roles: ['control-plane'], image: '1.0.0' },
    { name: 'rke2-ha', distribution: 'rke2', version: 'v1.30.4+rke2r1', roles: ['control-plane', 'control-plane', 'control-plane'], image: '2.0.0' },
    { name: 'kubeadm-mixed', distribution: 'kubeadm', version: 'v1.30.4', roles: ['control-plane', 'worker', 'worker'], image: '1.0.0' },
  ];

  it.each(cases)('provisions $name ($distribution, $roles.length nodes) to Running', async (c) => {
    const p = await t.api('POST', '/api/v1/clusterprofiles', profile(`${c.name}-profile`, c.distribution, c.version, `${registry.host}/edge/os:${c.image}`));
    expect(p.status, JSON.stringify(p.body)).toBe(201);
    const revision = (await t.api('GET', `/api/v1/clusterprofiles/${c.name}-profile/revisions/1`)).body;
    expect(JSON.stringify(revision)).toContain(digests[c.image]);
    const hosts = take(c.roles.length);
    const created = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: c.name },
      spec: { type: 'native', profile: { name: `${c.name}-profile`, revision: 1 }, nodes: hosts.map((h, i) => ({ host: h, role: c.roles[i] })) },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const running = await waitFor(async () => {
      const cl = await cluster(c.name);
      if (cl.status?.phase === 'Failed') throw new Error(`cluster failed: ${JSON.stringify(cl.status)}`);
      return cl.status?.phase === 'Running' && cl;
    }, 60_000);
    expect(running.status.nodes).toHaveLength(c.roles.length);
    for (const node of running.status.nodes) expect(node).toMatchObject({ ready: true, osImageDigest: digests[c.image] });
    for (const h of hosts) {
      const os = (await host(h)).status.agent.managers.os;
      expect(os.slots[os.bootedSlot].digest).toBe(digests[c.image]);
      expect((await host(h)).status.state).toBe('in-use');
    }
    const kc = await fetch(`${t.url}/api/v1/clusters/${c.name}/kubeconfig`, { headers: { authorization: `Bearer ${t.admin}` } });
    expect(kc.status).toBe(200);
    const kubeconfig = await kc.text();
    const endpoint = running.status.controlPlaneEndpoint ?? running.spec.controlPlaneEndpoint;
    expect(endpoint).toMatch(/^https:\/\//);
    expect(kubeconfig).toContain(`server: ${endpoint}`);
    const events = (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=Cluster,involvedObject.name=${c.name}`)).body.items.map(
      (e: any) => e.spec.reason,
    );
    expect(events.filter((r: string) => r === 'InitializingControlPlane')).toHaveLength(1);
  });

  it('refuses an image whose blob does not match its digest: nothing boots from it and the cluster says why', async () => {
    await t.api('POST', '/api/v1/clusterprofiles', profile('tampered-profile', 'k3s', 'v1.30.4+k3s1', `${registry.host}/edge/os:3.0.0`));
    const [h] = take(1);
    const slotsBefore = (await host(h)).status.agent?.managers?.os?.slots ?? {};
    const created = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'tampered' },
      spec: { type: 'native', profile: { name: 'tampered-profile', revision: 1 }, nodes: [{ host: h, role: 'control-plane' }] },
    });
    expect(created.status).toBe(201);
    const failed = await waitFor(async () => {
      const cl = await cluster('tampered');
      return (cl.status?.phase === 'Failed' || cl.status?.phase === 'Degraded') && cl;
    }, 30_000);
    expect(JSON.stringify(failed.status.conditions)).toMatch(new RegExp(`${h}.*(digest|sha256)`, 'i'));
    const os = (await host(h)).status.agent.managers.os;
    expect(os.error).toMatchObject({ component: 'os', retryable: false });
    expect(os.bootedSlot).not.toBe('B');
    expect(JSON.stringify(os.slots)).not.toContain(digests['3.0.0']);
    expect(os.slots).toEqual(slotsBefore);
  });

  it('finishes a 3-node cluster after the server is killed mid-provisioning, initializing once', async () => {
    await t.api('POST', '/api/v1/clusterprofiles', profile('restart-profile', 'k3s', 'v1.30.4+k3s1', `${registry.host}/edge/os:2.0.0`));
    const hosts = take(3);
    await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'restarted' },
      spec: {
        type: 'native',
        profile: { name: 'restart-profile', revision: 1 },
        nodes: hosts.map((h, i) => ({ host: h, role: i === 0 ? 'control-plane' : 'worker' })),
      },
    });
    const events = async () =>
      (await t.api('GET', '/api/v1/events?fieldSelector=involvedObject.kind=Cluster,involvedObject.name=restarted')).body.items.map((e: any) => e.spec.reason);
    await waitFor(async () => (await events()).includes('InitializingControlPlane'), 20_000);
    await t.restart();
    const running = await waitFor(async () => (await cluster('restarted')).status?.phase === 'Running' && (await cluster('restarted')), 60_000);
    expect(running.status.nodes.every((n: any) => n.ready)).toBe(true);
    expect((await events()).filter((r: string) => r === 'InitializingControlPlane')).toHaveLength(1);
  });
});
