import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { connect, register, TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

describe.each(DIALECTS)('agent registration and channel on %s', (dialect) => {
  let t: TestServer;
  const secrets: Record<string, string> = {};
  const mkToken = async (name: string, spec: Record<string, unknown>) => {
    const r = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec });
    expect(r.status).toBe(201);
    secrets[name] = r.body.status.token;
    return r.body.status.token as string;
  };
  const hostCount = async () => (await t.api('GET', '/api/v1/edgehosts?limit=1000')).body.items.length;
  const host = async (name: string) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 2, heartbeatIntervalSeconds: 0.5 });
    await mkToken('auto', { autoApprove: true, labels: { fleet: 'a' }, site: 'store-1' });
    await mkToken('manual', { autoApprove: false });
  });
  afterAll(async () => t?.close());

  it('registers a device once per key, copying token labels and site', async () => {
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(secrets.auto, { labels: { rack: '7' } }));
    expect(r.status).toBe(200);
    expect(r.body.hostName).toMatch(/^edge-[0-9a-f]{12}$/);
    expect(r.body.state).toBe('ready');
    const h = await host(r.body.hostName);
    expect(h.metadata.labels).toEqual({ rack: '7', fleet: 'a' });
    expect(h.spec.site).toBe('store-1');
    expect(h.status).toMatchObject({ state: 'ready', connectivity: 'offline', deviceUid: d.uid, agentVersion: 'test-1', registrationToken: 'auto' });
    const again = await register(t.url, await d.registerBody(secrets.auto));
    expect(again.body.hostName).toBe(r.body.hostName);
    expect((await t.api('GET', '/api/v1/registrationtokens/auto')).body.status.uses).toBe(1);
  });

  it('never lets another key take a registered device over silently', async () => {
    const d = await TestDevice.create();
    const first = await register(t.url, await d.registerBody(secrets.auto));
    const impostor = await d.withNewKey();
    const r = await register(t.url, await impostor.registerBody(secrets.auto));
    expect(r.body).toMatchObject({ hostName: first.body.hostName, state: 'pending-approval' });
    const h = await host(first.body.hostName);
    expect(h.status.pendingKeyFingerprint).toBeDefined();
    expect(h.status.conditions.map((c: any) => c.type)).toContain('KeyChangePending');
    // Plain approve does not bind a new key; approve-key names the key the operator checked.
    expect((await t.api('POST', `/api/v1/edgehosts/${first.body.hostName}/approve`)).body.error.code).toBe('InvalidState');
    const ap = await t.api('POST', `/api/v1/edgehosts/${first.body.hostName}/approve-key`, { fingerprint: h.status.pendingKeyFingerprint.slice(0, 16) });
    expect(ap.body.status.state).toBe('ready');
    expect(ap.body.status.keyFingerprint).toBe(h.status.pendingKeyFingerprint);
    // The old key no longer opens the channel.
    await expect(connect(t.url, await d.connectToken(first.body.hostName))).rejects.toMatchObject({ status: 401 });
  });

  it('keeps hosts pending until approved, and shows them online', async () => {
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(secrets.manual));
    expect(r.body.state).toBe('pending-approval');
    const { ws, messages } = await connect(t.url, await d.connectToken(r.body.hostName));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-2' }));
    await waitFor(() => messages.find((m) => m.type === 'welcome'));
    expect(messages.find((m) => m.type === 'welcome')).toMatchObject({ state: 'pending-approval', heartbeatIntervalSeconds: 0.5, hostName: r.body.hostName });
    // No work before approval: the spec follows it.
    expect(messages.find((m) => m.type === 'spec')).toBeUndefined();
    await waitFor(async () => (await host(r.body.hostName)).status.connectivity === 'online');
    expect((await host(r.body.hostName)).status.agentVersion).toBe('test-2');
    await t.api('POST', `/api/v1/edgehosts/${r.body.hostName}/approve`);
    await waitFor(() => messages.find((m) => m.type === 'state' && m.state === 'ready'));
    await waitFor(() => messages.find((m) => m.type === 'spec'));
    const twice = await t.api('POST', `/api/v1/edgehosts/${r.body.hostName}/approve`);
    expect(twice.body.error.code).toBe('InvalidState');
    // An invalid message is answered with an error and does not kill the channel.
    ws.send(JSON.stringify({ type: 'status', status: 'nope' }));
    await waitFor(() => messages.find((m) => m.type === 'error' && m.code === 'ValidationFailed'));
    ws.send(JSON.stringify({ type: 'event', id: 'e1', eventType: 'Normal', reason: 'Tested', message: 'hi', timestamp: new Date().toISOString() }));
    ws.send(JSON.stringify({ type: 'event', id: 'e1', eventType: 'Normal', reason: 'Tested', message: 'hi', timestamp: new Date().toISOString() }));
    const evs = await waitFor(async () => {
      const list = (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.name=${r.body.hostName}`)).body.items;
      return list.some((e: any) => e.spec.reason === 'Tested') && list;
    });
    expect(evs.filter((e: any) => e.spec.reason === 'Tested')).toHaveLength(1);
    ws.close();
    await waitFor(async () => (await host(r.body.hostName)).status.connectivity === 'offline');
  });

  it('takes an inventory sent again with a status (an address that came after the hello), and refuses a bad one without touching the stored one', async () => {
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(secrets.auto));
    const { ws, messages } = await connect(t.url, await d.connectToken(r.body.hostName));
    const linkLocal = { ...d.inventory(), nics: [{ name: 'eth0', mac: '52:54:00:00:00:01', addresses: ['fe80::1/64'] }] };
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-3', inventory: linkLocal }));
    await waitFor(() => messages.find((m) => m.type === 'welcome'));
    await waitFor(async () => (await host(r.body.hostName)).status.inventory?.nics?.[0]?.addresses?.[0] === 'fe80::1/64');
    const leased = { ...linkLocal, nics: [{ ...linkLocal.nics[0], addresses: ['10.1.2.3/24', 'fe80::1/64'] }] };
    ws.send(JSON.stringify({ type: 'status', status: {}, inventory: leased }));
    await waitFor(async () => (await host(r.body.hostName)).status.inventory?.nics?.[0]?.addresses?.[0] === '10.1.2.3/24');
    // A hostname with a control character: refused as the hello's would be; the stored inventory stays.
    ws.send(JSON.stringify({ type: 'status', status: {}, inventory: { ...leased, hostname: 'evil\u001b[2J', nics: [] } }));
    await waitFor(() => messages.find((m) => m.type === 'error' && m.code === 'ValidationFailed'));
    const h = await host(r.body.hostName);
    expect(h.status.inventory.hostname).toBe(leased.hostname);
    expect(h.status.inventory.nics).toEqual(leased.nics);
    ws.close();
  });

  it('marks a silent agent offline after offline-after', async () => {
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(secrets.auto));
    const { ws } = await connect(t.url, await d.connectToken(r.body.hostName));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'quiet' }));
    await waitFor(async () => (await host(r.body.hostName)).status.connectivity === 'online');
    const closed = new Promise((res) => ws.on('close', res));
    await waitFor(async () => (await host(r.body.hostName)).status.connectivity === 'offline', 6000);
    await closed;
  });

  it('refuses bad tokens with stable codes and writes nothing', async () => {
    const expired = await mkToken('expired', { expiresAt: new Date(Date.now() - 1000).toISOString() });
    const once = await mkToken('once', { maxUses: 1, autoApprove: true });
    await register(t.url, await (await TestDevice.create()).registerBody(once));
    const revoked = await mkToken('revoked', {});
    await t.api('POST', '/api/v1/registrationtokens/revoked/revoke');
    const before = await hostCount();
    const d = await TestDevice.create();
    const other = await TestDevice.create();
    const cases: [unknown, number, string][] = [
      [await d.registerBody('eprt_wrong'), 401, 'RegistrationTokenInvalid'],
      [await d.registerBody(expired), 401, 'RegistrationTokenExpired'],
      [await d.registerBody(revoked), 401, 'RegistrationTokenRevoked'],
      [await d.registerBody(once), 401, 'RegistrationTokenExhausted'],
      [{ ...(await d.registerBody(secrets.auto)), proof: await other.sign({ sub: d.uid, aud: 'edgeplane-register' }) }, 401, 'DeviceProofInvalid'],
      [{ ...(await d.registerBody(secrets.auto)), proof: await d.sign({ sub: d.uid, aud: 'edgeplane-connect' }) }, 401, 'DeviceProofInvalid'],
      [{ ...(await d.registerBody(secrets.auto)), deviceUid: 'x' }, 400, 'ValidationFailed'],
      [{ token: secrets.auto }, 400, 'ValidationFailed'],
    ];
    for (const [body, status, code] of cases) {
      const r = await register(t.url, body);
      expect({ status: r.status, code: r.body.error?.code }).toEqual({ status, code });
    }
    const raw = await fetch(`${t.url}/agent/v1/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":' });
    expect((await raw.json()).error.code).toBe('MalformedJson');
    expect(await hostCount()).toBe(before);
    expect((await t.api('GET', '/api/v1/registrationtokens/once')).body.status.uses).toBe(1);
  });

  it('authenticates connects with fresh device-signed tokens only', async () => {
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(secrets.auto));
    const name = r.body.hostName;
    const other = await TestDevice.create();
    const bad = async (token: string, code: string) => {
      const err = await connect(t.url, token).then(
        () => undefined,
        (e) => e,
      );
      expect(err?.body?.error?.code).toBe(code);
    };
    await bad('', 'ConnectTokenInvalid');
    await bad('not-a-jwt', 'ConnectTokenInvalid');
    await bad(await other.connectToken(name), 'ConnectTokenInvalid');
    await bad(await d.connectToken(name, { lifetime: 3600 }), 'ConnectTokenInvalid');
    await bad(await d.connectToken(name, { iat: Math.floor(Date.now() / 1000) - 600 }), 'ConnectTokenInvalid');
    await bad(await d.connectToken('edge-000000000000'), 'HostUnknown');
    const tok = await d.connectToken(name);
    const { ws } = await connect(t.url, tok);
    ws.close();
    await bad(tok, 'ConnectTokenReplayed');
  });

  it('keeps registered hosts connected when their token is revoked; rejected hosts are cut off', async () => {
    const tok = await mkToken('to-revoke', { autoApprove: true });
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(tok));
    const { ws, messages } = await connect(t.url, await d.connectToken(r.body.hostName));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 't' }));
    await waitFor(() => messages.find((m) => m.type === 'welcome'));
    await t.api('POST', '/api/v1/registrationtokens/to-revoke/revoke');
    ws.send(JSON.stringify({ type: 'heartbeat', seq: 1 }));
    await new Promise((res) => setTimeout(res, 300));
    expect(ws.readyState).toBe(ws.OPEN);
    // A restarted agent holding its identity reconnects without the token.
    const second = await connect(t.url, await d.connectToken(r.body.hostName));
    second.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 't' }));
    await waitFor(() => second.messages.find((m) => m.type === 'welcome'));
    const closed = new Promise<number>((res) => second.ws.on('close', (code) => res(code)));
    await t.api('POST', `/api/v1/edgehosts/${r.body.hostName}/reject`);
    expect(await closed).toBe(4403);
    await expect(connect(t.url, await d.connectToken(r.body.hostName))).rejects.toMatchObject({ status: 403 });
  });
});
