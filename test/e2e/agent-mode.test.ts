import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { pushDistributionArtifact, pushOciLayout, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * Agent mode (bring your own OS) end to end: a real registry holding SIMULATED k3s artifacts, a real
 * server, and a simulated fleet where some hosts keep their own OS (no A/B slots). An unmanaged host
 * takes a profile without an os layer, installs k3s from the artifact, joins a cluster; a version
 * change installs the new artifact and the node reports the version of the binary it now has. Every
 * mix of a managed host and an unmanaged profile (or the reverse) is refused with nothing written.
 */
describe.each(DIALECTS)('agent mode on hosts that keep their own OS (%s)', (dialect) => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  let managed: string[] = [];
  let unmanaged: string[] = [];
  const artifacts: Record<string, { ref: string; digest: string }> = {};
  let osImage = '';

  const host = async (name: string) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;
  const cluster = async (name: string) => (await t.api('GET', `/api/v1/clusters/${name}`)).body;
  const byoProfile = (version: string, artifact: string | undefined) => ({
    apiVersion: 'edgeplane.io/v1',
    kind: 'ClusterProfile',
    metadata: { name: 'byo' },
    spec: { layers: { kubernetes: { distribution: 'k3s', version, ...(artifact ? { artifact: { image: artifact } } : {}) } } },
  });
  /** Every row a refused write could have touched. */
  const snapshot = async () => ({
    clusters: (await t.api('GET', '/api/v1/clusters')).body.items.map((c: any) => [c.metadata.name, c.metadata.resourceVersion]),
    profiles: (await t.api('GET', '/api/v1/clusterprofiles')).body.items.map((p: any) => [p.metadata.name, p.status]),
    hosts: (await t.api('GET', '/api/v1/edgehosts')).body.items.map((h: any) => [h.metadata.name, h.status.state, JSON.stringify(h.spec)]),
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-agent-mode-'));
    [t, registry] = await Promise.all([testServer(dialect), startRegistry()]);
    for (const v of ['v1.30.4+k3s1', 'v1.31.1+k3s1']) artifacts[v] = await pushDistributionArtifact(registry, join(dir, 'layout'), 'k3s', v);
    await oci.writeOsImage({ layoutDir: join(dir, 'os'), tag: '1.0.0', name: 'Edgeplane OS', version: '1.0.0' });
    await pushOciLayout(join(dir, 'os'), `${registry.host}/edge/os:1.0.0`);
    osImage = `${registry.host}/edge/os:1.0.0`;
    // An OS image that records the Kubernetes it carries (the io.edgeplane.kubernetes annotation).
    const tree = join(dir, 'os-tree');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc/os-release'), 'NAME="Edgeplane OS"\nVERSION_ID=1.1.0\n');
    await oci.writeOciImage({ rootfs: tree, layoutDir: join(dir, 'os'), tag: '1.1.0', labels: { 'io.edgeplane.kubernetes': 'k3s v1.30.4+k3s1' } });
    await pushOciLayout(join(dir, 'os'), `${registry.host}/edge/os:1.1.0`);
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'byo' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: t.url,
      token,
      sites: 1,
      nodesPerSite: 4,
      unmanagedPerSite: 3,
      dataDir: join(dir, 'sim'),
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 20, backoffCapMs: 300 },
    });
    await fleet.waitUntilConnected(20_000);
    const items = await waitFor(async () => {
      const all = (await t.api('GET', '/api/v1/edgehosts')).body.items;
      return all.filter((h: any) => h.status.connectivity === 'online' && h.status.state === 'ready' && h.status.inventory).length === 4 && all;
    }, 20_000);
    managed = items.filter((h: any) => h.status.inventory.osMode === 'managed').map((h: any) => h.metadata.name);
    unmanaged = items.filter((h: any) => h.status.inventory.osMode === 'unmanaged').map((h: any) => h.metadata.name);
  }, 90_000);
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('hosts report their OS mode; a profile without an os layer must name an artifact that carries its version', async () => {
    expect(managed).toHaveLength(1);
    expect(unmanaged).toHaveLength(3);
    // Careless operator: no os layer and no artifact, or an artifact that carries another version.
    const before = await snapshot();
    const noArtifact = await t.api('POST', '/api/v1/clusterprofiles', byoProfile('v1.30.4+k3s1', undefined));
    expect(noArtifact.status).toBe(400);
    expect(JSON.stringify(noArtifact.body)).toContain('layers.kubernetes.artifact');
    const lie = await t.api('POST', '/api/v1/clusterprofiles', byoProfile('v1.31.1+k3s1', artifacts['v1.30.4+k3s1'].ref));
    expect(lie.status).toBe(422);
    expect(lie.body.error).toMatchObject({ code: 'KubernetesVersionNotInImage', details: { carries: 'k3s v1.30.4+k3s1' } });
    expect(await snapshot()).toEqual(before);

    const created = await t.api('POST', '/api/v1/clusterprofiles', byoProfile('v1.30.4+k3s1', artifacts['v1.30.4+k3s1'].ref));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.status).toMatchObject({ latestRevision: 1, artifactDigest: artifacts['v1.30.4+k3s1'].digest });
    expect(created.body.status.osImageDigest).toBeUndefined();
  });

  it('refuses a profile whose OS image records another Kubernetes version than the profile asks for', async () => {
    const ab = (version: string) => ({
      apiVersion: 'edgeplane.io/v1',
      kind: 'ClusterProfile',
      metadata: { name: 'carried' },
      spec: { layers: { os: { image: `${registry.host}/edge/os:1.1.0` }, kubernetes: { distribution: 'k3s', version } } },
    });
    const before = await snapshot();
    const r = await t.api('POST', '/api/v1/clusterprofiles', ab('v1.31.1+k3s1'));
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: 'KubernetesVersionNotInImage', details: { carries: 'k3s v1.30.4+k3s1', path: 'layers.os.image' } });
    expect(await snapshot()).toEqual(before);
    expect((await t.api('POST', '/api/v1/clusterprofiles', ab('v1.30.4+k3s1'))).status).toBe(201);
  });

  it('refuses to mix managed hosts with a profile without an os layer, and unmanaged hosts with one', async () => {
    const managedProfile = {
      apiVersion: 'edgeplane.io/v1',
      kind: 'ClusterProfile',
      metadata: { name: 'ab' },
      spec: { layers: { os: { image: osImage }, kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' } } },
    };
    expect((await t.api('POST', '/api/v1/clusterprofiles', managedProfile)).status).toBe(201);
    const before = await snapshot();
    const cases = [
      {
        profile: 'byo',
        nodes: [
          { host: unmanaged[0], role: 'control-plane' },
          { host: managed[0], role: 'worker' },
        ],
        host: managed[0],
      },
      { profile: 'ab', nodes: [{ host: unmanaged[0], role: 'control-plane' }], host: unmanaged[0] },
    ];
    for (const c of cases) {
      const r = await t.api('POST', '/api/v1/clusters', {
        metadata: { name: 'mixed' },
        spec: { type: 'native', profile: { name: c.profile, revision: 1 }, nodes: c.nodes },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      expect(r.body.error).toMatchObject({ code: 'HostOsModeMismatch', details: { host: c.host } });
    }
    // A host OS profile manages only the OS: never on a host that keeps its own, never without an os layer.
    for (const [h, p] of [
      [unmanaged[0], 'ab'],
      [managed[0], 'byo'],
    ]) {
      const r = await t.api('PATCH', `/api/v1/edgehosts/${h}`, { spec: { osProfile: { name: p } } }, { contentType: 'application/merge-patch+json' });
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      expect(r.body.error.code).toBe('HostOsModeMismatch');
    }
    expect(await snapshot()).toEqual(before);
  });

  it('installs k3s from the artifact on unmanaged hosts, joins a cluster, and a version change installs the new artifact', async () => {
    const [cp, worker] = unmanaged;
    const created = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'byo' },
      spec: {
        type: 'native',
        profile: { name: 'byo', revision: 1 },
        nodes: [
          { host: cp, role: 'control-plane' },
          { host: worker, role: 'worker' },
        ],
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const running = await waitFor(async () => {
      const c = await cluster('byo');
      if (c.status?.phase === 'Failed') throw new Error(`cluster failed: ${JSON.stringify(c.status)}`);
      return c.status?.phase === 'Running' && c;
    }, 40_000).catch(async (err) => {
      const hs = await Promise.all([cp, worker].map(async (h) => (await host(h)).status));
      throw new Error(`${err.message}: ${JSON.stringify((await cluster('byo')).status)} ${JSON.stringify(hs.map((x) => x.agent?.managers))}`);
    });
    for (const n of running.status.nodes) expect(n).toMatchObject({ ready: true, kubernetesVersion: 'v1.30.4+k3s1' });
    for (const h of [cp, worker]) {
      const s = (await host(h)).status.agent.managers;
      // The os manager does nothing on a host that keeps its own OS: no image, no failure.
      expect(s.os?.error).toBeUndefined();
      expect(s.kubernetes).toMatchObject({ phase: 'Ready', version: 'v1.30.4+k3s1' });
    }
    // The fleet keeps each simulated device's files under <dataDir>/<site>/node-<n> (hostname sim-<site>-node-<n>).
    const deviceFile = async (h: string, path: string) => {
      const m = /^sim-(site-\d+)-(node-\d+)$/.exec((await host(h)).status.inventory.hostname)!;
      return readFile(join(dir, 'sim', m[1], m[2], path), 'utf8');
    };
    expect(await deviceFile(cp, 'usr/local/bin/k3s')).toContain('k3s version v1.30.4+k3s1');
    expect(await deviceFile(cp, 'etc/systemd/system/k3s.service')).toContain('ExecStart=/usr/local/bin/k3s server');
    expect(await deviceFile(worker, 'etc/systemd/system/k3s-agent.service')).toContain('ExecStart=/usr/local/bin/k3s agent');

    // The version change: a new revision pointing at the new artifact.
    const rev2 = await t.api('PUT', '/api/v1/clusterprofiles/byo', byoProfile('v1.31.1+k3s1', artifacts['v1.31.1+k3s1'].ref));
    expect(rev2.status, JSON.stringify(rev2.body)).toBe(200);
    const spec = { ...running.spec, profile: { name: 'byo', revision: 2 } };
    const plan = await t.api('POST', '/api/v1/clusters/byo/plan', { spec });
    expect(plan.status, JSON.stringify(plan.body)).toBe(200);
    for (const n of plan.body.nodes)
      expect(n).toMatchObject({ change: 'service-restart', reasons: expect.arrayContaining(['kubernetes.artifact', 'kubernetes.version']) });
    expect((await t.api('PATCH', '/api/v1/clusters/byo', { spec: { profile: spec.profile } }, { contentType: 'application/merge-patch+json' })).status).toBe(
      200,
    );
    const upgraded = await waitFor(async () => {
      const c = await cluster('byo');
      return c.status?.phase === 'Running' && c.status.nodes.every((n: any) => n.kubernetesVersion === 'v1.31.1+k3s1') && c;
    }, 60_000);
    for (const n of upgraded.status.nodes) expect(n).toMatchObject({ ready: true, kubernetesVersion: 'v1.31.1+k3s1' });
    for (const h of [cp, worker]) expect(await deviceFile(h, 'usr/local/bin/k3s')).toContain('k3s version v1.31.1+k3s1');
    const events = (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${cp}`)).body.items.map(
      (e: any) => e.spec.reason,
    );
    expect(events.filter((r: string) => r === 'DistributionInstalled')).toHaveLength(2);
  });
});
