import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { DIGEST, FakeNode, profileBody } from './cluster-test-fleet.js';

const VERSION = 'v1.30.4+k3s1';

describe.each(DIALECTS)('clusters on %s', (dialect) => {
  let t: TestServer;
  let auto: string;
  let manual: string;
  const nodes: FakeNode[] = [];
  const node = async (online = true, token = auto) => {
    const n = await FakeNode.create(t, token, online);
    nodes.push(n);
    return n;
  };
  const cluster = (name: string, hosts: [string, 'control-plane' | 'worker'][], over: Record<string, unknown> = {}) => ({
    metadata: { name },
    spec: { profile: { name: 'edge', revision: 1 }, nodes: hosts.map(([host, role]) => ({ host, role })), variables: { site: 'shop-1' }, ...over },
  });
  const get = async (path: string) => (await t.api('GET', path)).body;
  const events = async (name: string) => (await get(`/api/v1/events?fieldSelector=involvedObject.kind=Cluster,involvedObject.name=${name}`)).items;

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1 });
    auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    manual = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'manual' }, spec: {} })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('refuses bad clusters with a specific code and writes nothing', async () => {
    const [a, b] = [await node(), await node()];
    const pending = await node(true, manual);
    const offline = await node(false);
    const refusals: [unknown, string][] = [
      [cluster('c1', [[a.name, 'control-plane']], { profile: { name: 'nope', revision: 1 } }), 'ProfileNotFound'],
      [cluster('c1', [[a.name, 'control-plane']], { profile: { name: 'edge', revision: 9 } }), 'ProfileRevisionNotFound'],
      [cluster('c1', [['edge-000000000000', 'control-plane']]), 'HostNotFound'],
      [cluster('c1', [[pending.name, 'control-plane']]), 'HostNotApproved'],
      [cluster('c1', [[offline.name, 'control-plane']]), 'HostOffline'],
      [
        cluster('c1', [
          [a.name, 'control-plane'],
          [a.name, 'worker'],
        ]),
        'DuplicateHost',
      ],
      [cluster('c1', [[a.name, 'worker']]), 'NoControlPlane'],
      [
        cluster('c1', [
          [a.name, 'control-plane'],
          [b.name, 'control-plane'],
        ]),
        'EvenControlPlanes',
      ],
      [cluster('c1', [[a.name, 'control-plane']], { variables: {} }), 'MissingVariable'],
      [cluster('c1', [[a.name, 'control-plane']], { variables: { site: 'x', color: 'red' } }), 'UnknownVariable'],
      [cluster('c1', [[a.name, 'control-plane']], { controlPlaneEndpoint: 'https://vip/x' }), 'ValidationFailed'],
    ];
    for (const [body, code] of refusals) {
      const r = await t.api('POST', '/api/v1/clusters', body);
      expect(r.body.error?.code, code).toBe(code);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    expect((await t.api('GET', '/api/v1/clusters/c1')).status).toBe(404);
    for (const h of [a, b]) {
      const host = await get(`/api/v1/edgehosts/${h.name}`);
      expect(host.status.state).toBe('ready');
      expect(host.metadata.annotations).toEqual({});
    }
    // Allowed when asked for; the hosts are then in use and refused to another cluster.
    const even = await t.api(
      'POST',
      '/api/v1/clusters',
      cluster(
        'c1',
        [
          [a.name, 'control-plane'],
          [b.name, 'control-plane'],
        ],
        { allowEvenControlPlanes: true },
      ),
    );
    expect(even.status).toBe(201);
    expect((await get(`/api/v1/edgehosts/${a.name}`)).status.state).toBe('in-use');
    const taken = await t.api('POST', '/api/v1/clusters', cluster('c2', [[a.name, 'control-plane']]));
    expect(taken.body.error).toMatchObject({ code: 'HostInUse', details: { cluster: 'c1' } });
    // A manager error before the cluster ever ran: Failed, with the node and the reason.
    await waitFor(() => a.spec()?.spec?.kubernetes?.init === true);
    a.report({
      os: {
        phase: 'Failed',
        bootedSlot: 'A',
        activeSlot: 'A',
        slots: {},
        error: { phase: 'prepare', component: 'blob', retryable: false, message: 'digest mismatch on layer sha256:ffff' },
      },
    });
    const failed = await waitFor(async () => {
      const c = await get('/api/v1/clusters/c1');
      return c.status.phase === 'Failed' && c;
    });
    expect(failed.status.conditions.find((c: any) => c.type === 'Ready').message).toContain(`${a.name}: os: digest mismatch`);
    // Deleting gives the hosts back, with the managed spec keys cleared.
    expect((await t.api('DELETE', '/api/v1/clusters/c1')).status).toBe(200);
    const freed = await get(`/api/v1/edgehosts/${a.name}`);
    expect(freed.status.state).toBe('ready');
    expect(freed.spec.kubernetes).toBeUndefined();
    expect(freed.metadata.annotations).toEqual({});
    await waitFor(() => a.spec() && a.spec().spec.kubernetes === undefined);
  });

  it('initializes the first control plane once, then joins the rest; survives a restart', async () => {
    const [c1, c2, c3, w1] = [await node(), await node(), await node(), await node()];
    const r = await t.api(
      'POST',
      '/api/v1/clusters',
      cluster(
        'prod',
        [
          [c1.name, 'control-plane'],
          [c2.name, 'control-plane'],
          [c3.name, 'control-plane'],
          [w1.name, 'worker'],
        ],
        { nodeLabels: { shop: 'one' } },
      ),
    );
    expect(r.status).toBe(201);
    const init = await waitFor(() => c1.spec()?.spec?.kubernetes && c1.spec().spec);
    expect(init.os).toEqual({ image: `127.0.0.1:1/edge/os@${DIGEST}`, digest: DIGEST });
    expect(init.kubernetes).toMatchObject({
      distribution: 'k3s',
      version: VERSION,
      init: true,
      role: 'control-plane',
      cluster: 'prod',
      nodeLabels: { shop: 'one' },
    });
    expect(init.kubernetes.config).toEqual({ 'cluster-domain': 'cluster.local' });
    expect(init.kubernetes.token).toMatch(/^[0-9a-f]{48}$/); // the join secret: a server token k3s/rke2 accept
    expect(init.kubernetes.server).toBeUndefined();
    expect(init.addons.items[0].manifest).toContain('site: "shop-1"');
    const endpoint = init.kubernetes.controlPlaneEndpoint;
    expect(endpoint).toMatch(/^https:\/\/.+:6443$/);
    const stored = await get(`/api/v1/edgehosts/${c1.name}`);
    expect(stored.metadata.annotations['edgeplane.io/cluster']).toBe('prod');
    // The join token reaches the agent only; the store and the API never hold it in the clear.
    expect(JSON.stringify(stored)).not.toContain(init.kubernetes.token);

    // Nobody else gets a spec while the first node initializes; no kubeconfig yet.
    await new Promise((res) => setTimeout(res, 1200));
    for (const n of [c2, c3, w1]) expect(n.spec()?.spec?.kubernetes).toBeUndefined();
    expect((await t.api('GET', '/api/v1/clusters/prod/kubeconfig')).body.error.code).toBe('InvalidState');
    expect((await get('/api/v1/clusters/prod')).status.phase).toBe('Provisioning');

    // The server restarts mid-provisioning: it resumes, and never initializes again.
    await t.restart();
    for (const n of [c1, c2, c3, w1]) await n.connect(t);
    await waitFor(() => c1.spec()?.spec?.kubernetes);
    expect(c1.spec().spec.kubernetes.token).toBe(init.kubernetes.token);

    const kubeconfig =
      'apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://127.0.0.1:6443\n  name: default\nusers:\n- name: default\n  user:\n    token: very-secret\n';
    c1.reportReady(DIGEST, VERSION, { kubeconfig });
    for (const n of [c2, c3, w1]) await waitFor(() => n.spec()?.spec?.kubernetes);
    for (const [n, role] of [
      [c2, 'control-plane'],
      [c3, 'control-plane'],
      [w1, 'worker'],
    ] as const) {
      const k = n.spec().spec.kubernetes;
      expect(k).toMatchObject({ init: false, role, token: init.kubernetes.token, server: endpoint, controlPlaneEndpoint: endpoint });
      expect(n.spec().spec.addons).toBeUndefined();
    }
    // The kubeconfig is a secret: kept out of host status, served by its own endpoint.
    const h1 = await get(`/api/v1/edgehosts/${c1.name}`);
    expect(JSON.stringify(h1.status)).not.toContain('very-secret');
    expect(h1.status.agent.managers.kubernetes.ready).toBe(true);
    const kc = await waitFor(async () => {
      const res = await fetch(`${t.url}/api/v1/clusters/prod/kubeconfig`, { headers: { authorization: `Bearer ${t.admin}` } });
      return res.status === 200 && res.text();
    });
    expect(kc).toContain(`server: ${endpoint}`);
    expect(kc).toContain('token: very-secret');

    // Running once every node is Ready at the version, on the pinned image.
    for (const n of [c2, c3]) n.reportReady(DIGEST, VERSION);
    w1.reportReady(`sha256:${'b'.repeat(64)}`, VERSION);
    await new Promise((res) => setTimeout(res, 800));
    const almost = await get('/api/v1/clusters/prod');
    expect(almost.status.phase).toBe('Provisioning');
    expect(almost.status.nodes.find((n: any) => n.host === w1.name)).toMatchObject({ ready: false, message: expect.stringContaining('is not the pinned') });
    // On the pinned image but in its trial boot (booted B once, the boot loader still defaults to A):
    // Kubernetes is Ready there, yet the node can still fall back, so the cluster is not Running.
    for (const trial of [
      { phase: 'Verifying', bootedSlot: 'B', activeSlot: 'A' },
      { phase: 'Rebooting', bootedSlot: 'B', activeSlot: 'A' },
      { phase: 'Verifying', bootedSlot: 'B', activeSlot: 'B' },
    ]) {
      const k = w1.spec().spec.kubernetes;
      w1.report({
        os: { ...trial, digest: DIGEST, slots: {} },
        kubernetes: { phase: 'Ready', ready: true, distribution: k.distribution, version: VERSION, nodeName: w1.name },
      });
      const onTrial = await waitFor(async () => {
        const c = await get('/api/v1/clusters/prod');
        const n = c.status.nodes.find((x: any) => x.host === w1.name);
        return n?.osImageDigest === DIGEST && n.message?.includes('on trial') && c;
      });
      expect(onTrial.status.phase).toBe('Provisioning');
      expect(onTrial.status.nodes.find((n: any) => n.host === w1.name)).toMatchObject({ ready: false, phase: 'Provisioning' });
    }
    w1.reportReady(DIGEST, VERSION);
    const running = await waitFor(async () => {
      const c = await get('/api/v1/clusters/prod');
      return c.status.phase === 'Running' && c;
    });
    expect(running.status.nodes).toHaveLength(4);
    for (const n of running.status.nodes)
      expect(n).toMatchObject({ ready: true, phase: 'Ready', osImageDigest: DIGEST, bootedSlot: 'B', kubernetesVersion: VERSION });
    expect(running.status).toMatchObject({ controlPlaneEndpoint: endpoint, kubeconfigAvailable: true });

    const reasons = (await events('prod')).map((e: any) => e.spec.reason);
    expect(reasons.filter((r: string) => r === 'InitializingControlPlane')).toHaveLength(1);
    expect(reasons.filter((r: string) => r === 'JoiningNode')).toHaveLength(3);
    expect(reasons).toContain('ClusterRunning');

    // A node failing after the cluster ran: Degraded, naming the node and why.
    w1.report({ os: { phase: 'FellBack', bootedSlot: 'A', activeSlot: 'A', slots: {}, digest: DIGEST, message: 'health check failed: kubelet not Ready' } });
    const degraded = await waitFor(async () => {
      const c = await get('/api/v1/clusters/prod');
      return c.status.phase === 'Degraded' && c;
    });
    expect(degraded.status.conditions.find((c: any) => c.type === 'Ready').message).toContain(`${w1.name}: os: health check failed`);
    await waitFor(async () => (await events('prod')).some((e: any) => e.spec.reason === 'ClusterDegraded' && e.spec.message.includes(w1.name)));
  });

  it('waits for an init node that reports only link-local addresses, then takes the address it reports next', async () => {
    const [c1, w1] = [await node(), await node()];
    const inventory = (addresses: string[]) => ({ ...c1.device.inventory(), nics: [{ name: 'eth0', mac: '52:54:00:aa:bb:cc', addresses }] });
    // Connected while DHCP is still under way: the interface has its fe80:: address only.
    c1.ws.send(JSON.stringify({ type: 'status', status: {}, inventory: inventory(['fe80::5054:ff:feaa:bbcc/64']) }));
    await waitFor(async () => (await get(`/api/v1/edgehosts/${c1.name}`)).status.inventory.nics[0].addresses.length === 1);
    const r = await t.api(
      'POST',
      '/api/v1/clusters',
      cluster('dhcp', [
        [c1.name, 'control-plane'],
        [w1.name, 'worker'],
      ]),
    );
    expect(r.status).toBe(201);
    // No endpoint from the hostname nothing resolves: no init spec, no endpoint in the status.
    await new Promise((res) => setTimeout(res, 1500));
    expect(c1.spec()?.spec?.kubernetes).toBeUndefined();
    const waiting = (await get('/api/v1/clusters/dhcp')).status;
    expect(waiting.controlPlaneEndpoint).toBeUndefined();
    expect(waiting.conditions.find((c: any) => c.type === 'ControlPlaneInitialized')).toMatchObject({
      status: 'False',
      message: expect.stringContaining(`waiting for ${c1.name} to report an address other nodes can reach`),
    });
    // The lease arrives; the agent reports its inventory again.
    c1.ws.send(JSON.stringify({ type: 'status', status: {}, inventory: inventory(['10.77.0.5/24', 'fe80::5054:ff:feaa:bbcc/64']) }));
    const init = await waitFor(() => c1.spec()?.spec?.kubernetes);
    expect(init.controlPlaneEndpoint).toBe('https://10.77.0.5:6443');
    const status = await waitFor(async () => {
      const s = (await get('/api/v1/clusters/dhcp')).status;
      return s.controlPlaneEndpointFrom && s;
    });
    expect(status).toMatchObject({
      controlPlaneEndpoint: 'https://10.77.0.5:6443',
      controlPlaneEndpointFrom: `init node address: host ${c1.name}, interface eth0`,
    });
    expect((await t.api('DELETE', '/api/v1/clusters/dhcp')).status).toBe(200);
  });

  it('adds and removes nodes on spec changes, keeping the init node', async () => {
    const prod = await get('/api/v1/clusters/prod');
    const extra = await node();
    const patch = (nodes: unknown) => t.api('PATCH', '/api/v1/clusters/prod', { spec: { nodes } }, { contentType: 'application/merge-patch+json' });
    const added = await patch([...prod.spec.nodes, { host: extra.name, role: 'worker' }]);
    expect(added.status).toBe(200);
    const k = await waitFor(() => extra.spec()?.spec?.kubernetes);
    expect(k).toMatchObject({ init: false, role: 'worker', cluster: 'prod' });
    expect(k.token).toMatch(/^[0-9a-f]{48}$/); // the join secret: a server token k3s/rke2 accept
    const withoutInit = await patch(prod.spec.nodes.slice(1));
    expect(withoutInit.body.error.code).toBe('InvalidState');
    const removed = await patch(prod.spec.nodes);
    expect(removed.status).toBe(200);
    const host = await get(`/api/v1/edgehosts/${extra.name}`);
    expect(host.status.state).toBe('ready');
    expect(host.spec.kubernetes).toBeUndefined();
    await waitFor(() => extra.spec().spec.kubernetes === undefined);
  });

  it('refuses giving a running cluster a VIP (its endpoint is in every certificate), changing nothing', async () => {
    const before = await get('/api/v1/clusters/prod');
    const r = await t.api(
      'PATCH',
      '/api/v1/clusters/prod',
      { spec: { vip: { address: '10.0.0.50', image: 'reg.lab/kube-vip:v0.8.9' } } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('InvalidState');
    const after = await get('/api/v1/clusters/prod');
    expect(after.spec).toEqual(before.spec);
    expect(after.metadata.generation).toBe(before.metadata.generation);
  });

  it('refuses a revision that changes a setting k3s fixes at creation (cluster-domain, the CNI), changing nothing', async () => {
    const before = await get('/api/v1/clusters/prod');
    for (const [over, setting] of [
      [{ kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1', config: { 'cluster-domain': 'edge.local' } } }, 'kubernetes.config.cluster-domain'],
      [{ network: { cni: 'calico' }, addons: [{ name: 'calico', manifest: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: calico}\n' }] }, 'network.cni'],
    ] as const) {
      const body = profileBody('edge');
      Object.assign(body.spec.layers, over);
      expect((await t.api('PUT', '/api/v1/clusterprofiles/edge', body)).status).toBe(200);
      const revision = (await get('/api/v1/clusterprofiles/edge')).status.latestRevision;
      const r = await t.api(
        'PATCH',
        '/api/v1/clusters/prod',
        { spec: { profile: { name: 'edge', revision } } },
        { contentType: 'application/merge-patch+json' },
      );
      expect(r.status).toBe(409);
      expect(r.body.error).toMatchObject({ code: 'InvalidState', details: { settings: [setting] } });
    }
    const after = await get('/api/v1/clusters/prod');
    expect(after.spec).toEqual(before.spec);
    expect(after.metadata.generation).toBe(before.metadata.generation);
  });

  it('lets operators read kubeconfigs and viewers not', async () => {
    for (const [name, role] of [
      ['op', 'operator'],
      ['view', 'viewer'],
    ]) {
      expect((await t.api('POST', '/api/v1/users', { metadata: { name }, spec: { role } })).status).toBe(201);
    }
    const token = async (user: string) => (await t.api('POST', '/api/v1/apitokens', { metadata: { name: `${user}-t` }, spec: { user } })).body.status.token;
    expect((await t.api('GET', '/api/v1/clusters/prod/kubeconfig', undefined, { token: await token('view') })).body.error.code).toBe('Forbidden');
    expect((await t.api('GET', '/api/v1/clusters/nope/kubeconfig', undefined, { token: await token('op') })).body.error.code).toBe('NotFound');
    // A profile in use stays.
    expect((await t.api('DELETE', '/api/v1/clusterprofiles/edge')).body.error).toMatchObject({ code: 'InvalidState', details: { clusters: ['prod'] } });
  });
});
