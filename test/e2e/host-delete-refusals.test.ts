import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * `DELETE /api/v1/edgehosts/NAME?force=true` where the removal cannot be done safely: refused with a
 * code saying why, and nothing changes (hand-driven nodes; the forced removal itself runs on the
 * simulator in host-delete.test.ts).
 */
describe.each(DIALECTS)('delete --force refusals (%s)', (dialect) => {
  let t: TestServer;
  const nodes: FakeNode[] = [];
  let token = '';
  const node = async () => {
    const n = await FakeNode.create(t, token);
    nodes.push(n);
    return n;
  };
  const createCluster = async (name: string, members: [FakeNode, string][]) => {
    const r = await t.api('POST', '/api/v1/clusters', {
      metadata: { name },
      spec: { profile: { name: 'edge', revision: 1 }, variables: { site: 's1' }, nodes: members.map(([n, role]) => ({ host: n.name, role })) },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  };
  const state = async () => {
    const hosts = (await t.api('GET', '/api/v1/edgehosts?limit=1000')).body.items.map((h: any) => [
      h.metadata.name,
      h.metadata.uid,
      h.status.state,
      h.metadata.annotations,
    ]);
    const clusters = (await t.api('GET', '/api/v1/clusters')).body.items.map((c: any) => [c.metadata.name, c.metadata.generation, c.spec.nodes]);
    return { hosts, clusters };
  };

  beforeAll(async () => {
    t = await testServer(dialect);
    token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('refuses the only node, an offline node and a removal the cluster guards refuse; a free host is deleted at once', async () => {
    const solo = await node();
    await createCluster('solo', [[solo, 'control-plane']]);
    const [cp, worker] = [await node(), await node()];
    await createCluster('pair', [
      [cp, 'control-plane'],
      [worker, 'worker'],
    ]);
    const trio = [await node(), await node(), await node()];
    await createCluster('trio', [
      [trio[0], 'control-plane'],
      [trio[1], 'control-plane'],
      [trio[2], 'control-plane'],
    ]);
    worker.close();
    await waitFor(async () => (await t.api('GET', `/api/v1/edgehosts/${worker.name}`)).body.status.connectivity === 'offline');
    const before = await state();

    const force = (name: string) => t.api('DELETE', `/api/v1/edgehosts/${name}?force=true`);
    expect(await force(solo.name)).toMatchObject({
      status: 409,
      body: { error: { code: 'HostRemovalRefused', details: { reason: 'only-node', cluster: 'solo' } } },
    });
    const offline = await force(worker.name);
    expect(offline).toMatchObject({ status: 409, body: { error: { code: 'HostRemovalRefused', details: { reason: 'offline', cluster: 'pair' } } } });
    expect(offline.body.error.message).toContain('kubectl delete node');
    // 3 -> 2 control-plane nodes goes through the cluster's own checks (an even count needs allowEvenControlPlanes).
    expect((await force(trio[2].name)).body.error.code).toBe('EvenControlPlanes');
    // A viewer may not delete at all, forced or not.
    await t.api('POST', '/api/v1/users', { metadata: { name: 'vic' }, spec: { role: 'viewer' } });
    const viewer = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vic-1' }, spec: { user: 'vic' } })).body.status.token;
    expect((await t.api('DELETE', `/api/v1/edgehosts/${cp.name}?force=true`, undefined, { token: viewer })).status).toBe(403);
    expect((await t.api('DELETE', `/api/v1/edgehosts/${cp.name}`, undefined, { token: viewer })).status).toBe(403);
    expect(await state()).toEqual(before);

    const free = await node();
    const deleted = await force(free.name);
    expect(deleted.status).toBe(200);
    expect(deleted.body.metadata.name).toBe(free.name);
    expect((await t.api('GET', `/api/v1/edgehosts/${free.name}`)).status).toBe(404);
  });
});
