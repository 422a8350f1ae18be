import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { connect, register, TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { DIGEST, FakeNode, profileBody } from '../cluster/cluster-test-fleet.js';

const VERSION = 'v1.30.4+k3s1';
const kubeconfigWith = (secret: string) =>
  `apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://127.0.0.1:6443\n  name: default\nusers:\n- name: default\n  user:\n    token: ${secret}\n`;

/** The parts of a host an attack on its identity must not change. */
const identityOf = (h: any) => ({
  state: h.status.state,
  keyFingerprint: h.status.keyFingerprint,
  connectivity: h.status.connectivity,
  labels: h.metadata.labels,
  spec: h.spec,
  generation: h.metadata.generation,
  cluster: h.metadata.annotations['edgeplane.io/cluster'],
});

describe.each(DIALECTS)('device identity under attack on %s', (dialect) => {
  let t: TestServer;
  let auto: string;
  let other: string;
  let viewer: string;
  let operator: string;
  const nodes: FakeNode[] = [];
  const get = async (path: string) => (await t.api('GET', path)).body;
  const kubeconfig = async () => {
    const res = await fetch(`${t.url}/api/v1/clusters/shop/kubeconfig`, { headers: { authorization: `Bearer ${t.admin}` } });
    return res.text();
  };
  const apiToken = async (user: string, role: string) => {
    expect((await t.api('POST', '/api/v1/users', { metadata: { name: user }, spec: { role } })).status).toBe(201);
    return (await t.api('POST', '/api/v1/apitokens', { metadata: { name: `${user}-t` }, spec: { user } })).body.status.token as string;
  };

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1 });
    auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    other = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'other' }, spec: { autoApprove: true } })).body.status.token;
    viewer = await apiToken('vera', 'viewer');
    operator = await apiToken('otto', 'operator');
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('a registration token cannot take over a cluster node: the new key waits, the node keeps serving, and refusing the key changes nothing else', async () => {
    const c1 = await FakeNode.create(t, auto);
    const w1 = await FakeNode.create(t, auto);
    nodes.push(c1, w1);
    const body = {
      metadata: { name: 'shop' },
      spec: {
        profile: { name: 'edge', revision: 1 },
        nodes: [
          { host: c1.name, role: 'control-plane' },
          { host: w1.name, role: 'worker' },
        ],
        variables: { site: 'shop-1' },
      },
    };
    expect((await t.api('POST', '/api/v1/clusters', body)).status).toBe(201);
    await waitFor(() => c1.spec()?.spec?.kubernetes);
    c1.reportReady(DIGEST, VERSION, { kubeconfig: kubeconfigWith('the-real-one') });
    await waitFor(() => w1.spec()?.spec?.kubernetes);
    w1.reportReady(DIGEST, VERSION);
    await waitFor(async () => (await get('/api/v1/clusters/shop')).status.phase === 'Running');
    await waitFor(async () => (await kubeconfig()).includes('the-real-one'));

    // Any viewer can read a host's device UID.
    const seen = (await t.api('GET', `/api/v1/edgehosts/${w1.name}`, undefined, { token: viewer })).body;
    const before = identityOf(seen);
    expect(before).toMatchObject({ state: 'in-use', connectivity: 'online', cluster: 'shop' });

    // The attacker holds another valid token and makes its own key for that UID.
    const attacker = await TestDevice.create(seen.status.deviceUid);
    const reg = await register(t.url, await attacker.registerBody(other));
    expect(reg).toMatchObject({ status: 200, body: { hostName: w1.name, state: 'pending-approval' } });
    // Its key opens no channel: no welcome, no spec (so no join token), no status write.
    await expect(connect(t.url, await attacker.connectToken(w1.name))).rejects.toMatchObject({ status: 403, body: { error: { code: 'DeviceKeyPending' } } });

    const during = await get(`/api/v1/edgehosts/${w1.name}`);
    expect(identityOf(during)).toEqual(before);
    expect(during.status.pendingKeyFingerprint).toBeDefined();
    expect(during.status.conditions.map((c: any) => c.type)).toContain('KeyChangePending');
    // The real agent is still connected and still the one the server talks to.
    expect(w1.ws.readyState).toBe(w1.ws.OPEN);
    expect((await get('/api/v1/clusters/shop')).status.phase).toBe('Running');

    // A viewer cannot decide; an operator refuses the key change without rejecting the host.
    expect((await t.api('POST', `/api/v1/edgehosts/${w1.name}/reject-key`, undefined, { token: viewer })).body.error.code).toBe('Forbidden');
    const refused = await t.api('POST', `/api/v1/edgehosts/${w1.name}/reject-key`, undefined, { token: operator });
    expect(refused.status).toBe(200);
    const after = await get(`/api/v1/edgehosts/${w1.name}`);
    expect(identityOf(after)).toEqual(before);
    expect(after.status.pendingKeyFingerprint).toBeUndefined();
    expect(after.status.conditions.map((c: any) => c.type)).not.toContain('KeyChangePending');
    expect(w1.ws.readyState).toBe(w1.ws.OPEN);
    // The refused key is gone for good; refusing again has nothing to refuse.
    await expect(connect(t.url, await attacker.connectToken(w1.name))).rejects.toMatchObject({ status: 401, body: { error: { code: 'ConnectTokenInvalid' } } });
    expect((await t.api('POST', `/api/v1/edgehosts/${w1.name}/reject-key`, undefined, { token: operator })).body.error.code).toBe('InvalidState');
    expect((await get('/api/v1/clusters/shop')).status.phase).toBe('Running');
    expect(await kubeconfig()).toContain('the-real-one');
    const reasons = (await get(`/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${w1.name}`)).items.map(
      (e: any) => e.spec.reason,
    );
    expect(reasons).toEqual(expect.arrayContaining(['DeviceKeyChanged', 'DeviceKeyChangeRejected']));
    const audit = (await get('/api/v1/audit?limit=500')).items.filter((e: any) => e.action === 'edgehost.reject-key');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'otto', target: `edgehosts/${w1.name}` });
  });

  it('takes the admin kubeconfig only from the init control-plane node, only while the cluster initializes', async () => {
    const [c1, w1] = nodes;
    // A worker (compromised, or an impostor that got through) reports a kubeconfig: dropped.
    w1.reportReady(DIGEST, VERSION, { kubeconfig: kubeconfigWith('from-a-worker') });
    // The init node itself, once the cluster ran, cannot replace it either.
    c1.reportReady(DIGEST, VERSION, { kubeconfig: kubeconfigWith('late-from-init') });
    // A later status from the worker proves both reports above were handled (one channel, in order).
    w1.report({ kubernetes: { phase: 'Ready', ready: true, distribution: 'k3s', version: VERSION, nodeName: w1.name, message: 'marker' } });
    await waitFor(async () => (await get(`/api/v1/edgehosts/${w1.name}`)).status.agent?.managers?.kubernetes?.message === 'marker');
    await waitFor(async () => (await get(`/api/v1/edgehosts/${c1.name}`)).status.agent?.managers?.kubernetes?.ready === true);
    w1.reportReady(DIGEST, VERSION);
    const kc = await kubeconfig();
    expect(kc).toContain('the-real-one');
    expect(kc).not.toContain('from-a-worker');
    expect(kc).not.toContain('late-from-init');
    // Neither went into host status either.
    for (const n of [c1, w1]) expect(JSON.stringify(await get(`/api/v1/edgehosts/${n.name}`))).not.toMatch(/from-a-worker|late-from-init/);
  });

  it('lets a remote session reach a cluster node (in-use), and never a host that is not approved', async () => {
    const [, w1] = nodes;
    expect((await get(`/api/v1/edgehosts/${w1.name}`)).status.state).toBe('in-use');
    const r = await t.api('POST', `/api/v1/edgehosts/${w1.name}/sessions`, { kind: 'exec', reason: 'node NotReady', command: ['journalctl', '-u', 'k3s'] });
    expect(r.status).toBe(201);
    expect(r.body.status.phase).toBe('pending');
    const manual = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'manual' }, spec: {} })).body.status.token;
    const pending = await FakeNode.create(t, manual);
    nodes.push(pending);
    const refused = await t.api('POST', `/api/v1/edgehosts/${pending.name}/sessions`, { kind: 'exec', reason: 'check the device', command: ['id'] });
    expect(refused.body.error.code).toBe('InvalidState');
    expect((await get(`/api/v1/remotesessions?limit=100`)).items.filter((x: any) => x.spec.host === pending.name)).toHaveLength(0);
  });

  it('gives a host waiting for approval no spec until it is approved', async () => {
    const manual = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'wait' }, spec: {} })).body.status.token;
    const n = await FakeNode.create(t, manual);
    nodes.push(n);
    expect((await get(`/api/v1/edgehosts/${n.name}`)).status.state).toBe('pending-approval');
    expect(n.messages.some((m) => m.type === 'welcome')).toBe(true);
    expect(
      (await t.api('PATCH', `/api/v1/edgehosts/${n.name}`, { spec: { displayName: 'till 3' } }, { contentType: 'application/merge-patch+json' })).status,
    ).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(n.spec()).toBeUndefined();
    expect((await t.api('POST', `/api/v1/edgehosts/${n.name}/approve`)).status).toBe(200);
    await waitFor(() => n.spec());
    expect(n.messages.some((m) => m.type === 'state' && m.state === 'ready')).toBe(true);
  });

  it('an approval never binds a key the operator did not name: approve keeps the registered key, approve-key needs the current fingerprint', async () => {
    const manual = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'by-hand' }, spec: {} })).body.status.token;
    const real = await TestDevice.create();
    const name = (await register(t.url, await real.registerBody(manual))).body.hostName;
    // Before the operator approves, an impostor registers the same UID with another token.
    const impostor = await TestDevice.create(real.uid);
    expect((await register(t.url, await impostor.registerBody(other))).body.state).toBe('pending-approval');
    const seen = await get(`/api/v1/edgehosts/${name}`);
    const realKey = seen.status.keyFingerprint;
    expect(seen.status.pendingKeyFingerprint).toBeDefined();

    // Approving the host approves the device that registered it, not the key waiting since.
    expect((await t.api('POST', `/api/v1/edgehosts/${name}/approve`, undefined, { token: operator })).status).toBe(200);
    const approved = await get(`/api/v1/edgehosts/${name}`);
    expect(approved.status).toMatchObject({ state: 'ready', keyFingerprint: realKey, pendingKeyFingerprint: seen.status.pendingKeyFingerprint });
    await expect(connect(t.url, await impostor.connectToken(name))).rejects.toMatchObject({ status: 403, body: { error: { code: 'DeviceKeyPending' } } });
    const { ws } = await connect(t.url, await real.connectToken(name));
    ws.close();

    // The operator checked one pending key; another registers meanwhile: naming the old one binds nothing.
    const checked = seen.status.pendingKeyFingerprint.slice(0, 16);
    const second = await TestDevice.create(real.uid);
    await register(t.url, await second.registerBody(other));
    const before = identityOf(await get(`/api/v1/edgehosts/${name}`));
    for (const body of [{ fingerprint: checked }, {}, { fingerprint: 'zz' }, { fingerprint: checked, extra: 1 }]) {
      const r = await t.api('POST', `/api/v1/edgehosts/${name}/approve-key`, body, { token: operator });
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    expect((await t.api('POST', `/api/v1/edgehosts/${name}/approve-key`, { fingerprint: checked }, { token: operator })).body.error.code).toBe(
      'PendingKeyChanged',
    );
    expect((await t.api('POST', `/api/v1/edgehosts/${name}/approve-key`, { fingerprint: checked }, { token: viewer })).body.error.code).toBe('Forbidden');
    expect(identityOf(await get(`/api/v1/edgehosts/${name}`))).toEqual(before);
    expect((await get(`/api/v1/edgehosts/${name}`)).status.keyFingerprint).toBe(realKey);
  });

  it('binds a pre-registered UID only with its pairing key: a generic token only asks for approval', async () => {
    const uid = `VICTIM-SERIAL-${dialect}`;
    const pre = await t.api('POST', '/api/v1/edgehosts', { metadata: { labels: { tier: 'payments' } }, spec: { deviceUid: uid } });
    expect(pre.status).toBe(201);
    const name = pre.body.metadata.name;
    const pairingKey = pre.body.status.pairingKey;
    const before = await get(`/api/v1/edgehosts/${name}`);
    expect(before.status.state).toBe('pre-registered');

    const attacker = await TestDevice.create(uid);
    const reg = await register(t.url, await attacker.registerBody(auto, { labels: { tier: 'evil' } }));
    expect(reg).toMatchObject({ status: 200, body: { hostName: name, state: 'pending-approval' } });
    const during = await get(`/api/v1/edgehosts/${name}`);
    expect(during.status.state).toBe('pre-registered');
    expect(during.metadata.labels).toEqual({ tier: 'payments' });
    expect(during.status.keyFingerprint).toBe('');
    await expect(connect(t.url, await attacker.connectToken(name))).rejects.toMatchObject({ status: 403, body: { error: { code: 'DeviceKeyPending' } } });

    // The real device arrives with its pairing key and takes exactly its host; the impostor's key is gone.
    const real = await TestDevice.create(uid);
    const { token: _t, ...noToken } = await real.registerBody('');
    const bound = await register(t.url, { ...noToken, pairingKey });
    expect(bound).toMatchObject({ status: 200, body: { hostName: name, state: 'ready' } });
    const after = await get(`/api/v1/edgehosts/${name}`);
    expect(after.metadata.labels).toEqual({ tier: 'payments' });
    expect(after.status.pendingKeyFingerprint).toBeUndefined();
    expect(after.status.conditions.map((c: any) => c.type)).not.toContain('KeyChangePending');
    await expect(connect(t.url, await attacker.connectToken(name))).rejects.toMatchObject({ status: 401 });
    const { ws } = await connect(t.url, await real.connectToken(name));
    ws.close();
  });

  it('refuses connect tokens issued in the future, living too long, or with an oversized id, and remembers used ones across a restart', async () => {
    const d = await TestDevice.create();
    const name = (await register(t.url, await d.registerBody(auto))).body.hostName;
    const now = Math.floor(Date.now() / 1000);
    const refusals = [
      await d.connectToken(name, { iat: now + 30 * 24 * 3600, lifetime: 300 }),
      await d.connectToken(name, { iat: now + 3600, lifetime: 60 }),
      await d.connectToken(name, { lifetime: 301 }),
      await d.connectToken(name, { jti: 'j'.repeat(500) }),
      await d.connectToken(name, { jti: 'a\u0000b' }),
      await d.connectToken(name, { jti: 'with space' }),
    ];
    // A host name that is not a resource name (a NUL byte, which PostgreSQL cannot even compare) is refused before any lookup.
    refusals.push(await d.connectToken('edge-\u0000x'), await d.connectToken('x'.repeat(300)));
    for (const token of refusals) await expect(connect(t.url, token)).rejects.toMatchObject({ status: 401, body: { error: { code: 'ConnectTokenInvalid' } } });

    const token = await d.connectToken(name, { lifetime: 300 });
    const first = await connect(t.url, token);
    first.ws.close();
    await expect(connect(t.url, token)).rejects.toMatchObject({ status: 401, body: { error: { code: 'ConnectTokenReplayed' } } });
    for (const n of nodes) n.close();
    await t.restart();
    await expect(connect(t.url, token)).rejects.toMatchObject({ status: 401, body: { error: { code: 'ConnectTokenReplayed' } } });
    // A fresh token still works after the restart.
    const again = await connect(t.url, await d.connectToken(name));
    again.ws.close();
  });

  it('identifies a known key by the key alone: whatever credential it carries, nothing is checked, used up or changed', async () => {
    const d = await TestDevice.create();
    const recover = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'recover' }, spec: { autoApprove: true } })).body.status.token;
    const first = await register(t.url, await d.registerBody(recover));
    expect(first.status).toBe(200);
    const host = first.body.hostName;
    const before = identityOf(await get(`/api/v1/edgehosts/${host}`));
    const uses = async () => (await get('/api/v1/registrationtokens?limit=100')).items.map((x: any) => [x.metadata.name, x.status.uses]);
    const usesBefore = await uses();
    expect((await t.api('POST', '/api/v1/registrationtokens/recover/revoke')).status).toBe(200);
    const { token: _t, ...base } = await d.registerBody('');
    for (const cred of [{ token: recover }, { token: 'eprt_bogus' }, { pairingKey: 'eppk_bogus' }, { pairing: { id: 'nope', secret: 'nope' } }]) {
      const r = await register(t.url, { ...base, ...cred });
      expect(r).toMatchObject({ status: 200, body: { hostName: host, state: 'ready' } });
    }
    expect(identityOf(await get(`/api/v1/edgehosts/${host}`))).toEqual(before);
    expect(await uses()).toEqual(usesBefore);
  });
});
