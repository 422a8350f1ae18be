import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oci, simKubernetes } from '@edgeplane/agent';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/device.js';
import { pushOciLayout, pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * Cluster upgrades end to end: real OCI registry, real server, simulated fleet (real agents; SimDevice A/B
 * slots with grub-editenv; simulated Kubernetes with a replicated probe workload). Day-2 changes of
 * running clusters: rolling upgrades, a fallback, rollback, scale out/in and the quorum guard.
 */
const PROBE = `apiVersion: apps/v1
kind: Deployment
metadata: {name: probe, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: probe}}
  template: {metadata: {labels: {app: probe}}, spec: {containers: [{name: probe, image: probe}]}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: probe, namespace: default}
spec: {minAvailable: 1, selector: {matchLabels: {app: probe}}}
`;

describe('cluster upgrades on simulated hosts', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  const digests: Record<string, string> = {};
  const hostnames: Record<string, string> = {};
  let free: string[] = [];

  const take = (n: number) => free.splice(0, n);
  const cluster = async (name: string) => (await t.api('GET', `/api/v1/clusters/${name}`)).body;
  const host = async (name: string) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;
  const events = async (kind: string, name: string) =>
    (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=${kind},involvedObject.name=${name}&limit=500`)).body.items
      .map((e: any) => ({ ...e.spec, at: e.status.firstTimestamp, count: e.status.count }))
      // Same millisecond: a window's end was written before the next start (the events list is ordered by name).
      .sort((a: any, b: any) => String(a.at).localeCompare(String(b.at)) || (a.reason === 'NodeUpgraded' ? -1 : b.reason === 'NodeUpgraded' ? 1 : 0));
  const reboots = async (h: string) => (await events('EdgeHost', h)).filter((e: any) => e.reason === 'Rebooting').reduce((n: number, e: any) => n + e.count, 0);
  const profile = (name: string, image: string, version: string, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'edgeplane.io/v1',
    kind: 'ClusterProfile',
    metadata: { name },
    spec: {
      layers: {
        os: { image: `${registry.host}/edge/os:${image}` },
        kubernetes: { distribution: 'k3s', version },
        addons: [{ name: 'probe', manifest: PROBE }],
      },
      ...extra,
    },
  });
  const setProfile = async (name: string, image: string, version: string, extra: Record<string, unknown> = {}) => {
    const r = await t.api('PUT', `/api/v1/clusterprofiles/${name}`, profile(name, image, version, extra));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return (await t.api('GET', `/api/v1/clusterprofiles/${name}`)).body.status.latestRevision as number;
  };
  const setRevision = async (name: string, revision: number) => {
    const r = await t.api(
      'PATCH',
      `/api/v1/clusters/${name}`,
      { spec: { profile: { name: `${name}-p`, revision } } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };
  const converged = (name: string, revision: number, timeout = 60_000) =>
    waitFor(async () => {
      if (process.env.DEBUG_UPGRADE) console.log(JSON.stringify((await cluster(name)).status));
      const c = await cluster(name);
      return c.status?.phase === 'Running' && c.status.observedGeneration === c.metadata.generation && c.status.profileRevision === revision && c;
    }, timeout);
  /**
   * Records, every 20 ms until stopped, the probe and which nodes the simulated cluster sees
   * disrupted (cordoned or NotReady): availability and "one node at a time" are measured from the
   * cluster, not taken from the controller's own events.
   */
  const recordProbe = (endpoint: string) => {
    const results: { ok: boolean; available: number }[] = [];
    const disrupted: string[][] = [];
    const timer = setInterval(() => {
      results.push(simKubernetes.probe(endpoint, 'default/probe'));
      disrupted.push((simKubernetes.inspect(endpoint)?.nodes ?? []).filter((n) => !n.ready || n.unschedulable).map((n) => n.name));
    }, 20);
    return { results, disrupted, stop: () => clearInterval(timer) };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-upgrade-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    const images: [string, Record<string, string>?][] = [['1.0.0'], ['2.0.0']];
    for (const [version, files] of images) {
      digests[version] = await pushOsImage(registry, join(dir, 'layout'), version, files);
    }
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: t.url,
      token,
      sites: 6,
      dataDir: join(dir, 'sim'),
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 20, backoffCapMs: 300 },
    });
    await fleet.waitUntilConnected(20_000);
    const items = await waitFor(async () => {
      const list = (await t.api('GET', '/api/v1/edgehosts')).body.items;
      return list.filter((h: any) => h.status.connectivity === 'online' && h.status.state === 'ready').length === 6 && list;
    }, 20_000);
    free = items.map((h: any) => h.metadata.name).sort();
    for (const h of items) hostnames[h.metadata.name] = h.status.inventory.hostname;
  }, 60_000);
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  const create = async (name: string, nodes: { host: string; role: string }[], extra: Record<string, unknown> = {}) => {
    expect((await t.api('POST', '/api/v1/clusterprofiles', profile(`${name}-p`, '1.0.0', 'v1.30.4+k3s1'))).status).toBe(201);
    const r = await t.api('POST', '/api/v1/clusters', { metadata: { name }, spec: { profile: { name: `${name}-p`, revision: 1 }, nodes, ...extra } });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return converged(name, 1);
  };

  let ha: string[] = [];
  it('rolls a new OS image and Kubernetes version through 3 control-plane nodes, one at a time, with zero failed probes', async () => {
    ha = take(3);
    const running = await create(
      'ha',
      ha.map((h) => ({ host: h, role: 'control-plane' })),
    );
    const endpoint = running.status.controlPlaneEndpoint;
    await waitFor(() => simKubernetes.probe(endpoint, 'default/probe').available === 2, 20_000);
    const rebootsBefore = await Promise.all(ha.map(reboots));

    const rev2 = await setProfile('ha-p', '2.0.0', 'v1.31.1+k3s1');
    // Dry run first: every node is a repave (new digest and new Kubernetes version).
    const plan = await t.api('POST', '/api/v1/clusters/ha/plan', { spec: { ...running.spec, profile: { name: 'ha-p', revision: rev2 } } });
    expect(plan.status, JSON.stringify(plan.body)).toBe(200);
    expect(plan.body.nodes.map((n: any) => n.change)).toEqual(['repave', 'repave', 'repave']);
    expect(plan.body.nodes[0].reasons).toEqual(expect.arrayContaining(['os.digest', 'kubernetes.version']));

    const probe = recordProbe(endpoint);
    await setRevision('ha', rev2);
    const done = await converged('ha', rev2);
    probe.stop();

    for (const n of done.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'], kubernetesVersion: 'v1.31.1+k3s1' });
    expect(done.status.upgrade).toMatchObject({ state: 'Succeeded', toRevision: rev2 });
    // The health gate compared the configuration each node runs (reported by its kubernetes manager).
    for (const h of ha) expect((await host(h)).status.agent.managers.kubernetes.specDigest).toMatch(/^[0-9a-f]{16}$/);
    expect(probe.results.length).toBeGreaterThan(20);
    expect(probe.results.filter((r) => !r.ok)).toEqual([]);
    expect(simKubernetes.disruptions(endpoint)).toEqual([]); // every replica moved before its node went down
    // Measured in the cluster: every node was disrupted at some point, never two at once.
    expect(new Set(probe.disrupted.flat())).toEqual(new Set(ha));
    expect(probe.disrupted.filter((d) => d.length > 1)).toEqual([]);
    // One node disrupted at a time: each start is followed by that node's completion before the next start.
    const steps = (await events('Cluster', 'ha')).filter((e: any) => e.reason === 'NodeUpgradeStarted' || e.reason === 'NodeUpgraded');
    expect(steps).toHaveLength(6);
    for (let i = 0; i < 6; i += 2) {
      expect(steps[i].reason).toBe('NodeUpgradeStarted');
      expect(steps[i + 1].reason).toBe('NodeUpgraded');
      expect(steps[i + 1].message.split(' ')[0]).toBe(steps[i].message.split(' ')[0]);
    }
    // Staging came first: every NodeStaged precedes the first start.
    const all = await events('Cluster', 'ha');
    const firstStart = all.findIndex((e: any) => e.reason === 'NodeUpgradeStarted');
    expect(all.slice(0, firstStart).filter((e: any) => e.reason === 'NodeStaged')).toHaveLength(3);
    // Exactly one reboot per node.
    expect(await Promise.all(ha.map(reboots))).toEqual(rebootsBefore.map((n) => n + 1));
    if (process.env.DEBUG_UPGRADE)
      console.log(JSON.stringify({ probes: probe.results.length, all: all.map((e: any) => `${e.at} ${e.reason} ${e.message}`) }, null, 1));
  }, 120_000);

  it('stops Degraded naming the node when an image fails to boot (or fails its health check) on the 2nd node; rollback restores a uniform cluster', async () => {
    const before = (await cluster('ha')).status.upgrade.nodes.map((n: any) => n.host) as string[];
    const second = before[1];
    const third = before[2];
    // The bad image "panics" on the second node only (SimDevice simulateBootFailure hook).
    await oci.writeOsImage({
      layoutDir: join(dir, 'layout'),
      tag: '3.0.0-bad',
      name: 'Edgeplane OS',
      version: '3.0.0-bad',
      files: { 'usr/lib/edgeplane/image.json': JSON.stringify({ name: 'Edgeplane OS', version: '3.0.0', simulateBootFailure: [hostnames[second]] }) },
    });
    digests.bad = await pushOciLayout(join(dir, 'layout'), `${registry.host}/edge/os:3.0.0-bad`);
    const thirdReboots = await reboots(third);
    const rev2 = (await cluster('ha')).spec.profile.revision;
    const rev3 = await setProfile('ha-p', '3.0.0-bad', 'v1.31.1+k3s1');
    await setRevision('ha', rev3);
    const failed = await waitFor(async () => {
      const c = await cluster('ha');
      return c.status?.upgrade?.state === 'Failed' && c.status.phase === 'Degraded' && c;
    }, 60_000);
    expect(failed.status.upgrade.failedNode).toBe(second);
    expect(failed.status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'UpgradeFailed' });
    expect(failed.status.conditions.find((c: any) => c.type === 'Ready').message).toContain(second);
    expect(failed.status.profileRevision).toBe(rev2);
    // The fallen-back node rejoins Ready on the old image and is never shown as up to date.
    await waitFor(async () => {
      const c = await cluster('ha');
      const n = c.status.nodes.find((x: any) => x.host === second);
      return n.osImageDigest === digests['2.0.0'] && (await host(second)).status.agent.managers.kubernetes.ready === true && n;
    }, 30_000);
    const node2 = (await cluster('ha')).status.nodes.find((x: any) => x.host === second);
    expect(node2.ready).toBe(false); // not the revision the cluster asks for
    expect((await host(second)).status.agent.managers.os.bootedSlot).toBe((await host(second)).status.agent.managers.os.activeSlot);
    // The third node was never disrupted.
    expect(await reboots(third)).toBe(thirdReboots);
    expect((await host(third)).status.agent.managers.os.digest).toBe(digests['2.0.0']);

    // Retry: the same node is tried again (and, with this image, falls back again).
    const retried = await t.api('POST', '/api/v1/clusters/ha/retry');
    expect(retried.body).toMatchObject({ action: 'retry', state: 'Rolling' });
    await waitFor(async () => (await events('Cluster', 'ha')).filter((e: any) => e.reason === 'UpgradeFailed').length === 2, 60_000);
    expect((await cluster('ha')).status.upgrade.failedNode).toBe(second);
    expect(await reboots(third)).toBe(thirdReboots);

    // Roll back to the previous revision: the one upgraded node is repaved back, the others are no-ops.
    await setRevision('ha', rev2);
    const back = await converged('ha', rev2);
    for (const n of back.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'] });
    expect(back.status.upgrade.nodes.filter((n: any) => n.change === 'repave').map((n: any) => n.host)).toEqual([before[0]]);

    // An image that boots but fails its post-boot health check on the second node: the same outcome, and the node says why.
    await oci.writeOsImage({
      layoutDir: join(dir, 'layout'),
      tag: '3.0.1-unhealthy',
      name: 'Edgeplane OS',
      version: '3.0.1-unhealthy',
      files: { 'usr/lib/edgeplane/image.json': JSON.stringify({ name: 'Edgeplane OS', version: '3.0.1', simulateUnhealthy: [hostnames[second]] }) },
    });
    digests.unhealthy = await pushOciLayout(join(dir, 'layout'), `${registry.host}/edge/os:3.0.1-unhealthy`);
    const thirdBefore = await reboots(third);
    const rev4 = await setProfile('ha-p', '3.0.1-unhealthy', 'v1.31.1+k3s1');
    await setRevision('ha', rev4);
    const unhealthy = await waitFor(async () => {
      const c = await cluster('ha');
      return c.status?.upgrade?.state === 'Failed' && c.status.upgrade.toRevision === rev4 && c.status.phase === 'Degraded' && c;
    }, 60_000);
    expect(unhealthy.status.upgrade.failedNode).toBe(second);
    expect(unhealthy.status.conditions.find((c: any) => c.type === 'Ready').message).toContain(second);
    const fellBack = (await events('EdgeHost', second)).filter((e: any) => e.reason === 'FellBack').at(-1);
    expect(fellBack.message).toContain('failed its health check');
    await waitFor(async () => {
      const m = (await host(second)).status.agent.managers;
      return m.os.digest === digests['2.0.0'] && m.os.bootedSlot === m.os.activeSlot && m.kubernetes.ready === true;
    }, 30_000);
    expect((await cluster('ha')).status.nodes.find((x: any) => x.host === second).ready).toBe(false);
    expect(await reboots(third)).toBe(thirdBefore);
    await setRevision('ha', rev2);
    const uniform = await converged('ha', rev2);
    for (const n of uniform.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'] });
  }, 180_000);

  it('stops Degraded naming the node and the check when a profile health check fails after the trial boot', async () => {
    const first = (await cluster('ha')).status.upgrade.nodes.map((n: any) => n.host)[0] as string;
    const rev2 = (await cluster('ha')).spec.profile.revision;
    digests.checked = await pushOsImage(registry, join(dir, 'layout'), '3.0.2');
    // SIMULATION: `edgeplane-sim-health fail` is the SimDevice stand-in for a check command that exits 1.
    const healthChecks = [
      { name: 'sim-ok', type: 'command', command: ['edgeplane-sim-health', 'ok'], retries: 1 },
      { name: 'app-ready', type: 'command', command: ['edgeplane-sim-health', 'fail', 'app answered 503'], retries: 1 },
    ];
    const rev = await setProfile('ha-p', '3.0.2', 'v1.31.1+k3s1', { healthChecks });
    await setRevision('ha', rev);
    const failed = await waitFor(async () => {
      const c = await cluster('ha');
      return c.status?.upgrade?.state === 'Failed' && c.status.upgrade.toRevision === rev && c.status.phase === 'Degraded' && c;
    }, 60_000);
    expect(failed.status.upgrade.failedNode).toBe(first);
    const ready = failed.status.conditions.find((c: any) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'UpgradeFailed' });
    expect(ready.message).toContain(first);
    expect(ready.message).toContain('health check "app-ready" failed');
    expect(ready.message).toContain('app answered 503');
    // The checks travelled to the node with the image switch: its agent ran them after the trial boot.
    const fellBack = (await events('EdgeHost', first)).filter((e: any) => e.reason === 'FellBack').at(-1);
    expect(fellBack.message).toContain('health check "app-ready" failed after 1 attempt(s)');
    expect(fellBack.message).not.toContain('sim-ok');
    // The node is back on its previous image; nobody else was disrupted.
    await waitFor(async () => {
      const m = (await host(first)).status.agent.managers;
      return m.os.digest === digests['2.0.0'] && m.os.bootedSlot === m.os.activeSlot && m.kubernetes.ready === true;
    }, 30_000);
    await setRevision('ha', rev2);
    const uniform = await converged('ha', rev2);
    for (const n of uniform.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'] });
  }, 120_000);

  it('refuses removing 2 of 3 control-plane nodes at once (quorum guard)', async () => {
    const c = await cluster('ha');
    const r = await t.api(
      'PATCH',
      '/api/v1/clusters/ha',
      { spec: { nodes: [c.spec.nodes[0]], allowEvenControlPlanes: true } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('QuorumGuard');

    // One at a time is allowed: the removed control-plane node leaves Kubernetes and etcd, its host goes back to the pool.
    const [keep1, keep2, gone] = c.spec.nodes.map((n: any) => n.host);
    const one = await t.api(
      'PATCH',
      '/api/v1/clusters/ha',
      { spec: { nodes: c.spec.nodes.slice(0, 2), allowEvenControlPlanes: true } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(one.status, JSON.stringify(one.body)).toBe(200);
    const two = await converged('ha', c.spec.profile.revision);
    expect(two.status.nodes.map((n: any) => n.host)).toEqual([keep1, keep2]);
    const endpoint = two.status.controlPlaneEndpoint;
    const left = await waitFor(() => {
      const k = simKubernetes.inspect(endpoint);
      return k && k.nodes.length === 2 && k;
    }, 20_000);
    expect(left.etcdMembers.sort()).toEqual([keep1, keep2].sort());
    expect(left.nodes.map((n) => n.name).sort()).toEqual([keep1, keep2].sort());
    await waitFor(async () => (await host(gone)).status.state === 'ready', 20_000);
  }, 60_000);

  it('upgrades a single-node cluster with exactly one reboot, then scales it 1 -> 3 -> 1', async () => {
    const [solo, w1, w2] = take(3);
    // A lone node cannot keep its disruption budget: the drain gives up after 2 s and the node goes down anyway.
    await create('solo', [{ host: solo, role: 'control-plane' }], { upgradeStrategy: { drainTimeoutSeconds: 2 } });
    const before = await reboots(solo);
    const rev2 = await setProfile('solo-p', '2.0.0', 'v1.31.1+k3s1');
    await setRevision('solo', rev2);
    const up = await converged('solo', rev2);
    expect(up.status.nodes[0]).toMatchObject({ osImageDigest: digests['2.0.0'], kubernetesVersion: 'v1.31.1+k3s1' });
    expect(await reboots(solo)).toBe(before + 1);

    const nodes = [
      { host: solo, role: 'control-plane' },
      { host: w1, role: 'worker' },
      { host: w2, role: 'worker' },
    ];
    expect((await t.api('PATCH', '/api/v1/clusters/solo', { spec: { nodes } }, { contentType: 'application/merge-patch+json' })).status).toBe(200);
    const three = await converged('solo', rev2);
    expect(three.status.nodes).toHaveLength(3);
    for (const n of three.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'], kubernetesVersion: 'v1.31.1+k3s1' });
    const endpoint = three.status.controlPlaneEndpoint;
    expect(
      simKubernetes
        .inspect(endpoint)
        ?.nodes.map((n) => n.name)
        .sort(),
    ).toEqual([solo, w1, w2].sort());

    expect((await t.api('PATCH', '/api/v1/clusters/solo', { spec: { nodes: [nodes[0]] } }, { contentType: 'application/merge-patch+json' })).status).toBe(200);
    await converged('solo', rev2);
    await waitFor(() => simKubernetes.inspect(endpoint)?.nodes.length === 1, 20_000);
    for (const h of [w1, w2]) {
      const released = await waitFor(async () => {
        const x = await host(h);
        return x.status.state === 'ready' && x.status.agent?.managers?.kubernetes?.phase === 'Pending' && x;
      }, 20_000);
      expect(released.spec.kubernetes).toBeUndefined();
    }

    // A new Kubernetes version on the same image: the image carries the binary, so no reboot can
    // bring the new version. The plan and the change are refused, nothing is written, and the node
    // keeps reporting the version it runs (the simulator reports the binary's, not the config's).
    const rev3 = await setProfile('solo-p', '2.0.0', 'v1.31.2+k3s1');
    const current = await cluster('solo');
    const plan = await t.api('POST', '/api/v1/clusters/solo/plan', { spec: { ...current.spec, profile: { name: 'solo-p', revision: rev3 } } });
    expect(plan.status).toBe(422);
    expect(plan.body.error).toMatchObject({ code: 'KubernetesVersionNotInImage', details: { digest: digests['2.0.0'], carries: 'k3s v1.31.1+k3s1' } });
    const rebootsBefore = await reboots(solo);
    const refused = await t.api(
      'PATCH',
      '/api/v1/clusters/solo',
      { spec: { profile: { name: 'solo-p', revision: rev3 } } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('KubernetesVersionNotInImage');
    const after = await cluster('solo');
    expect(after.spec).toEqual(current.spec);
    expect(after.spec.profile.revision).toBe(rev2);
    expect(after.status.nodes[0]).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'], kubernetesVersion: 'v1.31.1+k3s1' });
    expect((await host(solo)).status.agent.managers.kubernetes.version).toBe('v1.31.1+k3s1');
    expect(await reboots(solo)).toBe(rebootsBefore);

    // Deleting the cluster resets its host back to the pool: same identity, no Kubernetes left.
    expect((await t.api('DELETE', '/api/v1/clusters/solo')).status).toBe(200);
    const back = await waitFor(async () => {
      const x = await host(solo);
      return x.status.state === 'ready' && x.status.agent?.managers?.kubernetes?.phase === 'Pending' && x;
    }, 20_000);
    expect(back.metadata.name).toBe(solo);
    expect(simKubernetes.inspect(endpoint)).toBeUndefined();
  }, 120_000);
});
