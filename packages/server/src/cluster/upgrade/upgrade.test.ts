import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../../test/support/db.js';
import { waitFor } from '../../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../../test/support/server.js';
import { DIGEST, FakeNode, profileBody } from '../cluster-test-fleet.js';

const VERSION = 'v1.30.4+k3s1';
const DIGEST2 = `sha256:${'b'.repeat(64)}`;

/** Day-2 API on hand-driven nodes: plan (dry run), a rolling service restart, pause/resume, quorum guard, reset. */
describe.each(DIALECTS)('cluster upgrades on %s', (dialect) => {
  let t: TestServer;
  let token: string;
  const nodes: FakeNode[] = [];
  const get = async (path: string) => (await t.api('GET', path)).body;
  const patch = (path: string, body: unknown) => t.api('PATCH', path, body, { contentType: 'application/merge-patch+json' });

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1 });
    token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    for (let i = 0; i < 4; i++) nodes.push(await FakeNode.create(t, token));
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('plans, rolls a configuration change one node at a time, pauses and resumes, guards quorum, resets free hosts only', async () => {
    const [a, b, c, free] = nodes;
    const spec = { profile: { name: 'edge', revision: 1 }, nodes: [a, b, c].map((n) => ({ host: n.name, role: 'control-plane' })), variables: { site: 's1' } };
    expect((await t.api('POST', '/api/v1/clusters', { metadata: { name: 'prod' }, spec })).status).toBe(201);
    for (const n of [a, b, c]) {
      await waitFor(() => n.spec()?.spec?.kubernetes);
      n.reportReady(DIGEST, VERSION);
    }
    await waitFor(async () => (await get('/api/v1/clusters/prod')).status.profileRevision === 1);

    // Revision 2: a new OS image digest; revision 3: only a Kubernetes config value.
    const rev = async (over: Record<string, unknown>) => {
      const body = profileBody('edge');
      Object.assign(body.spec.layers, over);
      expect((await t.api('PUT', '/api/v1/clusterprofiles/edge', body)).status).toBe(200);
      return (await get('/api/v1/clusterprofiles/edge')).status.latestRevision as number;
    };
    const rev2 = await rev({ os: { image: `127.0.0.1:1/edge/os@${DIGEST2}` } });
    const plan2 = await t.api('POST', '/api/v1/clusters/prod/plan', { spec: { ...spec, profile: { name: 'edge', revision: rev2 } } });
    expect(plan2.status, JSON.stringify(plan2.body)).toBe(200);
    expect(plan2.body).toMatchObject({ kind: 'UpgradePlan', fromRevision: 1, toRevision: rev2, removed: [] });
    expect(plan2.body.nodes.map((n: any) => [n.change, n.reasons])).toEqual([a, b, c].map(() => ['repave', ['os.digest']]));
    const rev3 = await rev({
      kubernetes: { distribution: 'k3s', version: VERSION, config: { 'cluster-domain': 'cluster.local', 'kubelet-arg': 'max-pods=150' } },
    });
    const plan3 = await t.api('POST', '/api/v1/clusters/prod/plan', { ...spec, profile: { name: 'edge', revision: rev3 } });
    expect(plan3.body.nodes.map((n: any) => n.change)).toEqual(['service-restart', 'service-restart', 'service-restart']);
    expect(plan3.body.nodes[0].reasons).toEqual(['kubernetes.config.kubelet-arg']);
    // Dry run only: nothing was written.
    expect((await get('/api/v1/clusters/prod')).spec.profile.revision).toBe(1);
    // Quorum guard, in the plan and in the update.
    const two = { ...spec, nodes: [spec.nodes[0]] };
    expect((await t.api('POST', '/api/v1/clusters/prod/plan', { spec: two })).body.error.code).toBe('QuorumGuard');
    const refused = await patch('/api/v1/clusters/prod', { spec: { nodes: [spec.nodes[0]] } });
    expect([refused.status, refused.body.error.code]).toEqual([422, 'QuorumGuard']);
    expect((await t.api('POST', '/api/v1/clusters/prod/pause')).body.error.code).toBe('InvalidState');
    expect((await t.api('POST', '/api/v1/clusters/nope/plan', { spec })).status).toBe(404);

    // Roll revision 3: one node at a time, each after the previous one reports the new config Ready.
    const gen = (n: FakeNode) => n.spec()?.generation ?? 0;
    const before = new Map([a, b, c].map((n) => [n.name, gen(n)]));
    expect((await patch('/api/v1/clusters/prod', { spec: { profile: { name: 'edge', revision: rev3 } } })).status).toBe(200);
    const changed = () => [a, b, c].filter((n) => gen(n) > before.get(n.name)!);
    const first = (await waitFor(() => changed().length === 1 && changed()))[0];
    expect(first.spec().spec.kubernetes.config).toEqual({ 'cluster-domain': 'cluster.local', 'kubelet-arg': 'max-pods=150' });
    expect(first.spec().spec.maintenance).toBeUndefined(); // a service restart needs no drain
    expect((await t.api('POST', '/api/v1/clusters/prod/pause')).body).toMatchObject({ action: 'pause', state: 'Paused' });
    first.reportReady(DIGEST, VERSION);
    await waitFor(async () => (await get('/api/v1/clusters/prod')).status.upgrade.nodes.find((n: any) => n.host === first.name).phase === 'Done');
    await new Promise((r) => setTimeout(r, 700));
    expect(changed()).toHaveLength(1); // paused: nothing else started
    expect((await get('/api/v1/clusters/prod')).status).toMatchObject({ phase: 'Running', profileRevision: 1, upgrade: { state: 'Paused' } });
    expect((await t.api('POST', '/api/v1/clusters/prod/resume')).body.state).toBe('Rolling');
    for (let i = 2; i <= 3; i++) {
      const now = await waitFor(() => changed().length === i && changed());
      now[i - 1].reportReady(DIGEST, VERSION);
    }
    const done = await waitFor(async () => {
      const cl = await get('/api/v1/clusters/prod');
      return cl.status.profileRevision === rev3 && cl;
    });
    expect(done.status).toMatchObject({ phase: 'Running', upgrade: { state: 'Succeeded', toRevision: rev3 } });
    const reasons = (await get('/api/v1/events?fieldSelector=involvedObject.kind=Cluster,involvedObject.name=prod&limit=200')).items.map(
      (e: any) => e.spec.reason,
    );
    expect(reasons.filter((r: string) => r === 'NodeUpgradeStarted')).toHaveLength(3);
    expect(reasons).toEqual(expect.arrayContaining(['UpgradeStarted', 'UpgradePaused', 'UpgradeResumed', 'UpgradeSucceeded']));

    // Cancel: the node inside its window finishes; the others stay on their previous spec.
    const rev4 = await rev({
      kubernetes: { distribution: 'k3s', version: VERSION, config: { 'cluster-domain': 'cluster.local', 'kubelet-arg': 'max-pods=160' } },
    });
    const at = new Map([a, b, c].map((n) => [n.name, gen(n)]));
    expect((await patch('/api/v1/clusters/prod', { spec: { profile: { name: 'edge', revision: rev4 } } })).status).toBe(200);
    const moved = () => [a, b, c].filter((n) => gen(n) > at.get(n.name)!);
    const one = (await waitFor(() => moved().length === 1 && moved()))[0];
    expect((await t.api('POST', '/api/v1/clusters/prod/cancel')).body.state).toBe('Cancelled');
    one.reportReady(DIGEST, VERSION);
    await waitFor(async () => (await get('/api/v1/clusters/prod')).status.upgrade.nodes.find((n: any) => n.host === one.name).phase === 'Done');
    await new Promise((r) => setTimeout(r, 700));
    expect(moved()).toHaveLength(1);
    const cancelled = (await get('/api/v1/clusters/prod')).status;
    expect(cancelled).toMatchObject({ profileRevision: rev3, upgrade: { state: 'Cancelled', toRevision: rev4 } });
    expect((await t.api('POST', '/api/v1/clusters/prod/resume')).body.error.code).toBe('InvalidState');

    // Reset: refused for a member, done for a free host (managed spec cleared, generation bumped).
    const member = await t.api('POST', `/api/v1/edgehosts/${a.name}/reset`);
    expect([member.status, member.body.error.code]).toEqual([409, 'HostInCluster']);
    const g = (await get(`/api/v1/edgehosts/${free.name}`)).metadata.generation;
    const reset = await t.api('POST', `/api/v1/edgehosts/${free.name}/reset`);
    expect(reset.status).toBe(200);
    expect((await get(`/api/v1/edgehosts/${free.name}`)).metadata.generation).toBe(g + 1);
    expect((await t.api('POST', '/api/v1/edgehosts/edge-000000000000/reset')).status).toBe(404);
  }, 60_000);
});
