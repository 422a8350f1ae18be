import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { connect, register, TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

// Server-side host filters (so the console filters 10,000 hosts across pages) and the connectivity
// history the connection hub records as events.
describe.each(DIALECTS)('edge host field selectors and connectivity events on %s', (dialect) => {
  let t: TestServer;
  const ready: string[] = [];
  const pending: string[] = [];
  let online: { dev: TestDevice; name: string };
  const names = async (query: string) => {
    const r = await t.api('GET', `/api/v1/edgehosts?${query}`);
    expect(r.status).toBe(200);
    return r.body as { items: { metadata: { name: string } }[]; metadata: { continue?: string } };
  };
  const hostEvents = async (name: string) =>
    (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${name}`)).body.items
      .filter((e: any) => ['Online', 'Offline'].includes(e.spec.reason))
      .sort((a: any, b: any) => a.status.firstTimestamp.localeCompare(b.status.firstTimestamp))
      .map((e: any) => `${e.spec.type}:${e.spec.reason}`);

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 2, heartbeatIntervalSeconds: 0.5 });
    const auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    const manual = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'manual' }, spec: {} })).body.status.token;
    for (let i = 0; i < 3; i++) {
      const dev = await TestDevice.create();
      const name = (await register(t.url, await dev.registerBody(auto))).body.hostName as string;
      ready.push(name);
      if (i === 0) online = { dev, name };
    }
    for (let i = 0; i < 2; i++) pending.push((await register(t.url, await (await TestDevice.create()).registerBody(manual))).body.hostName);
    ready.sort();
    pending.sort();
  });
  afterAll(async () => t?.close());

  it('filters hosts by state and connectivity in SQL, across pages', async () => {
    expect((await names('fieldSelector=status.state=pending-approval')).items.map((h) => h.metadata.name)).toEqual(pending);
    // Paged: each page holds only matching hosts, and the continue token carries on after them.
    const first = await names('fieldSelector=status.state=ready&limit=2');
    expect(first.items.map((h) => h.metadata.name)).toEqual(ready.slice(0, 2));
    const rest = await names(`fieldSelector=status.state=ready&limit=2&continue=${first.metadata.continue}`);
    expect(rest.items.map((h) => h.metadata.name)).toEqual(ready.slice(2));
    expect(rest.metadata.continue).toBeUndefined();

    const { ws } = await connect(t.url, await online.dev.connectToken(online.name));
    await waitFor(async () => (await names('fieldSelector=status.connectivity=online')).items.length === 1);
    expect((await names('fieldSelector=status.state=ready,status.connectivity=online')).items.map((h) => h.metadata.name)).toEqual([online.name]);
    expect((await names('fieldSelector=status.state=pending-approval,status.connectivity=online')).items).toEqual([]);
    ws.close();
    await waitFor(async () => (await names('fieldSelector=status.connectivity=online')).items.length === 0);
  });

  it('refuses unknown fields with a validation error, not a 500', async () => {
    for (const q of ['fieldSelector=spec.nope=x', 'fieldSelector=status.state', 'fieldSelector=constructor=x']) {
      const r = await t.api('GET', `/api/v1/edgehosts?${q}`);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('InvalidFieldSelector');
    }
    expect((await t.api('GET', '/api/v1/clusters?fieldSelector=status.state=x')).status).toBe(400);
  });

  it('records each connectivity transition once, as Online and Offline events', async () => {
    // The host connected and disconnected once in the previous test; a second round adds two more.
    await waitFor(async () => (await hostEvents(online.name)).length === 2);
    expect(await hostEvents(online.name)).toEqual(['Normal:Online', 'Warning:Offline']);
    const { ws } = await connect(t.url, await online.dev.connectToken(online.name));
    await waitFor(async () => (await hostEvents(online.name)).length === 3);
    ws.close();
    await waitFor(async () => (await hostEvents(online.name)).length === 4);
    expect(await hostEvents(online.name)).toEqual(['Normal:Online', 'Warning:Offline', 'Normal:Online', 'Warning:Offline']);
    // Hosts that never connected have no connectivity history.
    expect(await hostEvents(pending[0])).toEqual([]);
  });
});
