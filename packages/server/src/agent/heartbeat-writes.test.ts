import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { connect, register, TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { openStore, type Store } from '../store/db.js';

/**
 * Scale contract (docs/scale.md "Heartbeats touch memory only"): a heartbeat changes no resource
 * (no resourceVersion bump, so no change notice) and is not written one by one: last-seen is
 * flushed in batches (every 5 s with offlineAfterSeconds 30), and is not lost.
 */
describe.each(DIALECTS)('heartbeats on %s', (dialect) => {
  let t: TestServer;
  // A second store handle: the API overlays last-seen from memory, the stored row is what counts here.
  let store: Store;
  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 30, heartbeatIntervalSeconds: 10 });
    store = openStore({ dataDir: t.store.dataDir, databaseUrl: t.store.databaseUrl, poolSize: 1 });
  });
  afterAll(async () => {
    await store?.close();
    await t?.close();
  });

  it('write nothing per heartbeat; last-seen arrives in a later batched flush', async () => {
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'hb' }, spec: { autoApprove: true } })).body.status.token;
    const d = await TestDevice.create();
    const name = (await register(t.url, await d.registerBody(token))).body.hostName as string;
    const { ws, messages } = await connect(t.url, await d.connectToken(name));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 't' }));
    await waitFor(() => messages.find((m) => m.type === 'welcome'));
    const host = async () => {
      const r = await store.db
        .selectFrom('edge_hosts')
        .select(['last_seen', 'resource_version', 'connectivity'])
        .where('name', '=', name)
        .executeTakeFirstOrThrow();
      return { lastSeen: r.last_seen ?? undefined, rv: String(r.resource_version), connectivity: r.connectivity };
    };
    await waitFor(async () => (await host()).connectivity === 'online');
    const rv = (await host()).rv;

    // 50 heartbeats in ~1 s, watching the stored host all along: at most one flush fits in that time.
    const startedAt = Date.now();
    const seen = new Set<string | undefined>();
    const versions = new Set<string>();
    for (let seq = 1; seq <= 50; seq++) {
      ws.send(JSON.stringify({ type: 'heartbeat', seq }));
      await new Promise((r) => setTimeout(r, 20));
      if (seq % 5 === 0) {
        const h = await host();
        seen.add(h.lastSeen);
        versions.add(h.rv);
      }
    }
    expect(Date.now() - startedAt).toBeLessThan(5000); // the window this test relies on
    expect([...versions]).toEqual([rv]);
    expect(seen.size).toBeLessThanOrEqual(2);
    // Not lost: a later flush stores a last-seen from after the heartbeats began.
    await waitFor(async () => Date.parse((await host()).lastSeen ?? '0') >= startedAt, 8000);
    expect((await host()).rv).toBe(rv);
    ws.close();
  }, 30_000);
});
