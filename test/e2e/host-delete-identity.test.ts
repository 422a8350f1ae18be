import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * Deleted and rejected devices coming back, through the public agent and API paths: a deleted host's
 * device registers again as a NEW host under the identity rules (pending approval unless its token
 * auto-approves), a rejected host can be approved, and nothing of a deleted host's identity works.
 */
describe.each(DIALECTS)('deleted and rejected devices coming back (%s)', (dialect) => {
  let t: TestServer;
  const secrets: Record<string, string> = {};
  const host = (name: string) => t.api('GET', `/api/v1/edgehosts/${name}`);
  const refusal = (token: string) =>
    connect(t.url, token).then(
      ({ ws }) => {
        ws.close();
        return undefined;
      },
      (e) => ({ status: e.status, code: e.body?.error?.code }),
    );

  /** Opens the agent channel like an agent does (hello first) and waits for the server's welcome. */
  const open = async (token: string) => {
    const c = await connect(t.url, token);
    c.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    const welcome = await waitFor(() => c.messages.find((m) => m.type === 'welcome'));
    return { ...c, welcome };
  };

  beforeAll(async () => {
    t = await testServer(dialect);
    for (const [name, autoApprove] of [
      ['manual', false],
      ['auto', true],
    ] as const)
      secrets[name] = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec: { autoApprove } })).body.status.token;
  });
  afterAll(async () => t?.close());

  it('a deleted host registers again as a new host, pending approval with a token that does not auto-approve', async () => {
    const d = await TestDevice.create();
    const first = await register(t.url, await d.registerBody(secrets.manual));
    const name = first.body.hostName;
    expect((await t.api('POST', `/api/v1/edgehosts/${name}/approve`)).status).toBe(200);
    await t.api(
      'PATCH',
      `/api/v1/edgehosts/${name}`,
      { metadata: { labels: { role: 'till' } }, spec: { displayName: 'till 1' } },
      { contentType: 'application/merge-patch+json' },
    );
    const old = (await host(name)).body;
    expect(old.status.state).toBe('ready');

    expect((await t.api('DELETE', `/api/v1/edgehosts/${name}`)).status).toBe(200);
    // What the agent hears on its next connect: this server does not know the host (it registers again).
    expect(await refusal(await d.connectToken(name))).toEqual({ status: 401, code: 'HostUnknown' });
    expect((await host(name)).status).toBe(404);

    const again = await register(t.url, await d.registerBody(secrets.manual));
    expect(again).toMatchObject({ status: 200, body: { hostName: name, state: 'pending-approval' } });
    const fresh = (await host(name)).body;
    // A new identity: new uid, no approval, labels or spec carried over from the deleted host.
    expect(fresh.metadata.uid).not.toBe(old.metadata.uid);
    expect(fresh.status.state).toBe('pending-approval');
    expect(fresh.metadata.labels?.role).toBeUndefined();
    expect(fresh.spec.displayName).toBeUndefined();
    // Pending: the channel opens but carries no spec until an operator approves.
    const pending = await open(await d.connectToken(name));
    expect(pending.welcome.state).toBe('pending-approval');
    expect(pending.messages.some((m) => m.type === 'spec')).toBe(false);
    pending.ws.close();

    // With an auto-approving token the same device comes back ready.
    const d2 = await TestDevice.create();
    const n2 = (await register(t.url, await d2.registerBody(secrets.auto))).body.hostName;
    expect((await t.api('DELETE', `/api/v1/edgehosts/${n2}`)).status).toBe(200);
    expect((await register(t.url, await d2.registerBody(secrets.auto))).body).toMatchObject({ hostName: n2, state: 'ready' });
  });

  it("gives an attacker holding a deleted host's old connect tokens nothing", async () => {
    const d = await TestDevice.create();
    const name = (await register(t.url, await d.registerBody(secrets.auto))).body.hostName;
    const used = await d.connectToken(name);
    await open(used);
    const unused = await d.connectToken(name);
    expect((await t.api('DELETE', `/api/v1/edgehosts/${name}`)).status).toBe(200);
    const all = async () => (await t.api('GET', '/api/v1/edgehosts?limit=1000')).body.items.map((h: any) => h.metadata.name).sort();
    const before = await all();

    for (const token of [used, unused]) expect(await refusal(token)).toEqual({ status: 401, code: 'HostUnknown' });
    // Nor can a connect token register anything: registration needs a credential and a proof of the key.
    const r = await register(t.url, { ...(await d.registerBody(secrets.auto)), token: unused });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(await all()).toEqual(before);
    expect((await host(name)).status).toBe(404);

    // Once the device itself registered again, the captured used token is still spent.
    expect((await register(t.url, await d.registerBody(secrets.manual))).body.state).toBe('pending-approval');
    expect(await refusal(used)).toEqual({ status: 401, code: 'ConnectTokenReplayed' });
    expect((await host(name)).body.status.state).toBe('pending-approval');
  });

  it('a rejected host can be approved again; deleting it lets the device register anew, pending approval', async () => {
    const d = await TestDevice.create();
    const name = (await register(t.url, await d.registerBody(secrets.manual))).body.hostName;
    expect((await t.api('POST', `/api/v1/edgehosts/${name}/reject`)).body.status.state).toBe('rejected');
    expect(await refusal(await d.connectToken(name))).toEqual({ status: 403, code: 'HostRejected' });
    // Registering again does not undo a rejection.
    expect((await register(t.url, await d.registerBody(secrets.auto))).body).toMatchObject({ hostName: name, state: 'rejected' });

    const approved = await t.api('POST', `/api/v1/edgehosts/${name}/approve`);
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body.status.state).toBe('ready');
    const c = await open(await d.connectToken(name));
    expect(c.welcome.state).toBe('ready');
    c.ws.close();
    // Another device key never rides on that approval.
    const impostor = await d.withNewKey();
    expect(await refusal(await impostor.connectToken(name))).toMatchObject({ status: 401 });

    const d2 = await TestDevice.create();
    const n2 = (await register(t.url, await d2.registerBody(secrets.manual))).body.hostName;
    await t.api('POST', `/api/v1/edgehosts/${n2}/reject`);
    expect((await t.api('DELETE', `/api/v1/edgehosts/${n2}`)).status).toBe(200);
    expect((await register(t.url, await d2.registerBody(secrets.manual))).body).toMatchObject({ hostName: n2, state: 'pending-approval' });
  });
});
