import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { FakeNode, profileBody } from '../cluster/cluster-test-fleet.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const MERGE = { contentType: 'application/merge-patch+json' };

/** An OS-only profile (no kubernetes layer): digest-pinned images resolve without a registry. */
const osProfile = (digest: string) => ({
  apiVersion: 'edgeplane.io/v1',
  kind: 'ClusterProfile',
  metadata: { name: 'gw-os' },
  spec: {
    layers: { os: { image: `127.0.0.1:1/edge/gw@${digest}`, insecure: true } },
    variables: [{ name: 'port', default: '8080' }],
    healthChecks: [{ name: 'app', type: 'command', command: ['app-check', '--port', '8080'] }],
  },
});

describe.each(DIALECTS)('host OS profiles on %s', (dialect) => {
  let t: TestServer;
  let auto: string;
  let manual: string;
  const nodes: FakeNode[] = [];
  const node = async (token = auto) => {
    const n = await FakeNode.create(t, token);
    nodes.push(n);
    return n;
  };
  const get = async (path: string) => (await t.api('GET', path)).body;
  const host = (name: string) => get(`/api/v1/edgehosts/${name}`);
  const assign = (name: string, ref: unknown) => t.api('PATCH', `/api/v1/edgehosts/${name}`, { spec: { osProfile: ref } }, MERGE);

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1 });
    auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    manual = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'manual' }, spec: {} })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', osProfile(A))).status).toBe(201);
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('accepts a profile with only an OS layer; clusters and rollouts refuse it; k8s-only layers need kubernetes', async () => {
    const n = await node();
    const c = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'c1' },
      spec: { profile: { name: 'gw-os', revision: 1 }, nodes: [{ host: n.name, role: 'control-plane' }] },
    });
    expect(c).toMatchObject({ status: 422, body: { error: { code: 'ProfileHasNoKubernetes' } } });
    expect((await t.api('GET', '/api/v1/clusters/c1')).status).toBe(404);
    expect((await host(n.name)).status.state).toBe('ready');
    const r = await t.api('POST', '/api/v1/rollouts', {
      metadata: { name: 'r1' },
      spec: { targets: { selector: 'fleet=shops' }, profile: { name: 'gw-os', revision: 1 }, strategy: { batches: [{ limit: '100%' }] } },
    });
    expect(r).toMatchObject({ status: 422, body: { error: { code: 'ProfileHasNoKubernetes' } } });
    const bad = osProfile(A);
    (bad.spec.layers as Record<string, unknown>).network = { cni: 'flannel' };
    const v = await t.api('POST', '/api/v1/clusterprofiles', { ...bad, metadata: { name: 'bad-os' } });
    expect(v).toMatchObject({ status: 400, body: { error: { code: 'ValidationFailed' } } });
    expect(v.body.error.details.issues[0].path).toBe('spec.layers.network');
  });

  it('renders spec.os from the pinned revision, sends it to the agent and moves only on an explicit revision', async () => {
    const n = await node();
    const r = await assign(n.name, { name: 'gw-os' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    // Pinned to the latest revision at assignment; spec.os rendered with the variable defaults.
    expect(r.body.spec.osProfile).toEqual({ name: 'gw-os', revision: 1 });
    expect(r.body.spec.os).toEqual({
      image: `127.0.0.1:1/edge/gw@${A}`,
      digest: A,
      insecure: true,
      healthChecks: [{ name: 'app', type: 'command', command: ['app-check', '--port', '8080'], timeoutSeconds: 10, retries: 3 }],
    });
    const sent = await waitFor(() => n.spec()?.spec?.os?.digest === A && n.spec());
    expect(sent.spec.kubernetes).toBeUndefined();
    expect(sent.spec.osProfile).toBeUndefined();
    expect(sent.spec.os.healthChecks[0].command).toEqual(['app-check', '--port', '8080']);
    expect(r.body.status.os).toMatchObject({ profile: 'gw-os', revision: 1, desiredDigest: A, upToDate: false });
    expect(r.body.status.conditions).toContainEqual(expect.objectContaining({ type: 'OsUpToDate', status: 'False', reason: 'NotReported' }));

    // The agent reports the image committed: the host is up to date.
    n.report({ os: { phase: 'Committed', bootedSlot: 'B', activeSlot: 'B', digest: A, slots: { B: { digest: A } } } });
    const done = await waitFor(async () => {
      const h = await host(n.name);
      return h.status.os?.upToDate && h;
    });
    expect(done.status.os).toMatchObject({ digest: A, bootedSlot: 'B', activeSlot: 'B', phase: 'Committed' });
    expect(done.status.conditions).toContainEqual(expect.objectContaining({ type: 'OsUpToDate', status: 'True' }));

    // A new profile revision does not move the host by itself...
    expect((await t.api('PUT', '/api/v1/clusterprofiles/gw-os', osProfile(B))).status).toBe(200);
    const pushes = n.messages.filter((m) => m.type === 'spec').length;
    expect((await host(n.name)).spec.os.digest).toBe(A);
    // ...nor does re-applying the assignment without a revision (a PUT that also leaves out spec.os).
    const cur = await host(n.name);
    const put = await t.api('PUT', `/api/v1/edgehosts/${n.name}`, { metadata: { name: n.name }, spec: { osProfile: { name: 'gw-os' } } });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.spec).toMatchObject({ osProfile: { name: 'gw-os', revision: 1 }, os: { digest: A } });
    expect(put.body.metadata.generation).toBeGreaterThanOrEqual(cur.metadata.generation);
    // Naming revision 2 sends the new digest.
    expect((await assign(n.name, { name: 'gw-os', revision: 2 })).body.spec.os.digest).toBe(B);
    await waitFor(() => n.spec()?.spec?.os?.digest === B);
    expect(n.messages.filter((m) => m.type === 'spec').length).toBeGreaterThan(pushes);
    const h = await host(n.name);
    expect(h.status.os).toMatchObject({ revision: 2, desiredDigest: B, digest: A, upToDate: false });
    const reasons = (await get(`/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${n.name}`)).items.map((e: any) => e.spec.reason);
    expect(reasons.filter((x: string) => x === 'OsProfileAssigned')).toHaveLength(2);

    // Removing the assignment clears spec.os; the agent keeps what it runs.
    const off = await assign(n.name, null);
    expect(off.body.spec.os).toBeUndefined();
    expect(off.body.status.os).toBeUndefined();
    await waitFor(() => n.spec()?.spec && !n.spec().spec.os);
    expect(
      (await get(`/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${n.name}`)).items.map((e: any) => e.spec.reason),
    ).toContain('OsProfileRemoved');
  });

  it('refuses unknown profiles and revisions, unapproved hosts and cluster nodes, writing nothing', async () => {
    const [free, member] = [await node(), await node()];
    const pending = await FakeNode.create(t, manual, false);
    const c = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'k1' },
      spec: { profile: { name: 'edge', revision: 1 }, nodes: [{ host: member.name, role: 'control-plane' }], variables: { site: 's' } },
    });
    expect(c.status, JSON.stringify(c.body)).toBe(201);
    // Let the cluster controller write the member's spec first, so only a refusal could change it below.
    await waitFor(async () => (await host(member.name)).spec.kubernetes);
    const refusals: [string, unknown, string][] = [
      [free.name, { name: 'nope' }, 'ProfileNotFound'],
      [free.name, { name: 'gw-os', revision: 9 }, 'ProfileRevisionNotFound'],
      [free.name, { name: 'gw-os', revision: 0 }, 'ValidationFailed'],
      [pending.name, { name: 'gw-os' }, 'HostNotApproved'],
      [member.name, { name: 'gw-os' }, 'HostInCluster'],
    ];
    for (const [name, ref, code] of refusals) {
      const before = await host(name);
      const r = await assign(name, ref);
      expect(r.body.error?.code, code).toBe(code);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      const after = await host(name);
      expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
      expect(after.spec.osProfile).toBeUndefined();
    }
    // Nor can a cluster move to an OS-only revision.
    const move = await t.api('PATCH', '/api/v1/clusters/k1', { spec: { profile: { name: 'gw-os', revision: 1 } } }, MERGE);
    expect(move).toMatchObject({ status: 422, body: { error: { code: 'ProfileHasNoKubernetes' } } });
    expect((await get('/api/v1/clusters/k1')).spec.profile).toEqual({ name: 'edge', revision: 1 });
    // A pre-registration cannot carry one either (the host is not approved yet).
    const pre = await t.api('POST', '/api/v1/edgehosts', { metadata: {}, spec: { deviceUid: 'pre-os-0001', osProfile: { name: 'gw-os' } } });
    expect(pre.body.error?.code).toBe('HostNotApproved');

    // A cluster does not take a host that runs a host OS profile, and a used profile cannot be deleted.
    expect((await assign(free.name, { name: 'gw-os', revision: 1 })).status).toBe(200);
    const k2 = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'k2' },
      spec: { profile: { name: 'edge', revision: 1 }, nodes: [{ host: free.name, role: 'control-plane' }], variables: { site: 's' } },
    });
    expect(k2).toMatchObject({ status: 409, body: { error: { code: 'HostHasOsProfile', details: { host: free.name } } } });
    expect((await host(free.name)).status.state).toBe('ready');
    expect(await t.api('DELETE', '/api/v1/clusterprofiles/gw-os')).toMatchObject({ status: 409, body: { error: { code: 'InvalidState' } } });
    // A host reset ends the assignment too; then a cluster may take the host.
    expect((await t.api('POST', `/api/v1/edgehosts/${free.name}/reset`)).status).toBe(200);
    const reset = await host(free.name);
    expect(reset.spec.osProfile).toBeUndefined();
    expect(reset.spec.os).toBeUndefined();
    const k3 = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'k3' },
      spec: { profile: { name: 'edge', revision: 1 }, nodes: [{ host: free.name, role: 'control-plane' }], variables: { site: 's' } },
    });
    expect(k3.status, JSON.stringify(k3.body)).toBe(201);
  });

  it("merges os with an appliance's virt spec (VirtController) and keeps both when the host is re-applied", async () => {
    const n = await node();
    // What an appliance's agent reports: the libvirt capability and inventory (libvirt's test driver,
    // which agents report as simulated: its guests run beside the server, so a loopback URL is fine).
    const GiB = 1024 ** 3;
    const libvirt = {
      uri: 'test:///default',
      simulated: true,
      cpus: 16,
      memoryMiB: 8192,
      networks: [{ name: 'default', active: true }],
      pools: [{ name: 'default', active: true, capacityBytes: 200 * GiB, availableBytes: 200 * GiB }],
      domains: [],
    };
    n.ws.send(JSON.stringify({ type: 'status', status: { capabilities: ['libvirt'], managers: { virt: { phase: 'Ready', libvirt, domains: [] } } } }));
    await waitFor(async () => (await host(n.name)).status.agent?.capabilities?.includes('libvirt'));
    expect((await assign(n.name, { name: 'gw-os' })).status).toBe(200);
    const vm = { name: 'cp1', role: 'control-plane', vcpus: 2, memoryMiB: 512, diskGiB: 10, network: 'default', storagePool: 'default' };
    const c = await t.api('POST', '/api/v1/clusters', {
      metadata: { name: 'v1' },
      spec: { type: 'virtualized', appliance: n.name, vms: [vm], profile: { name: 'edge', revision: 1 }, variables: { site: 's' } },
    });
    expect(c.status, JSON.stringify(c.body)).toBe(201);
    // The VirtController adds the VM to the appliance's spec; the OS part stays.
    const sent = await waitFor(() => n.spec()?.spec?.virt?.vms?.length === 1 && n.spec());
    expect(sent.spec.os.digest).toBe(B);
    expect((await host(n.name)).spec).toMatchObject({ osProfile: { name: 'gw-os', revision: 2 }, os: { digest: B }, virt: { vms: [{ vm: 'cp1' }] } });
    // Re-applying the host without the rendered keys (edgeplane apply) keeps both.
    const put = await t.api('PUT', `/api/v1/edgehosts/${n.name}`, {
      metadata: { name: n.name },
      spec: { displayName: 'appliance', osProfile: { name: 'gw-os' } },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.spec).toMatchObject({ displayName: 'appliance', os: { digest: B }, osProfile: { revision: 2 }, virt: { vms: [{ vm: 'cp1' }] } });
    // Moving the appliance's OS to revision 1 changes only os.
    expect((await assign(n.name, { name: 'gw-os', revision: 1 })).status).toBe(200);
    const moved = await waitFor(() => n.spec()?.spec?.os?.digest === A && n.spec());
    expect(moved.spec.virt.vms).toHaveLength(1);
    expect((await t.api('DELETE', '/api/v1/clusters/v1')).status).toBe(200);
  });
});
