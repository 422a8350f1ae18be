import { PRESTAGE_ANNOTATION } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../../test/support/db.js';
import { waitFor } from '../../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../../test/support/server.js';
import { DIGEST, FakeNode, profileBody } from '../cluster-test-fleet.js';

const VERSION = 'v1.30.4+k3s1';
const DIGEST2 = `sha256:${'c'.repeat(64)}`;

/**
 * A rollout's pre-stage request (PRESTAGE_ANNOTATION, set ahead of a site's maintenance window):
 * every node downloads the next revision's OS image stage-only, nothing disruptive happens, and the
 * later upgrade finds the images staged.
 */
describe.each(DIALECTS)('pre-staging a revision ahead of its upgrade on %s', (dialect) => {
  let t: TestServer;
  const nodes: FakeNode[] = [];
  const get = async (path: string) => (await t.api('GET', path)).body;
  const patch = (path: string, body: unknown) => t.api('PATCH', path, body, { contentType: 'application/merge-patch+json' });

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1 });
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    for (let i = 0; i < 2; i++) nodes.push(await FakeNode.create(t, token));
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('stages the next revision image on every node without activating it, withdraws it, and the upgrade finds it staged', async () => {
    const [cp, worker] = nodes;
    const spec = {
      profile: { name: 'edge', revision: 1 },
      nodes: [
        { host: cp.name, role: 'control-plane' },
        { host: worker.name, role: 'worker' },
      ],
      variables: { site: 's1' },
    };
    expect((await t.api('POST', '/api/v1/clusters', { metadata: { name: 'shop' }, spec })).status).toBe(201);
    for (const n of nodes) {
      await waitFor(() => n.spec()?.spec?.kubernetes);
      n.reportReady(DIGEST, VERSION);
    }
    await waitFor(async () => (await get('/api/v1/clusters/shop')).status.profileRevision === 1);
    const body = profileBody('edge');
    body.spec.layers.os = { image: `127.0.0.1:1/edge/os@${DIGEST2}` };
    expect((await t.api('PUT', '/api/v1/clusterprofiles/edge', body)).status).toBe(200);
    const k8sBefore = nodes.map((n) => n.spec().spec.kubernetes);

    // Pre-stage revision 2: stage-only OS on every node, the rest of the spec unchanged.
    expect((await patch('/api/v1/clusters/shop', { metadata: { annotations: { [PRESTAGE_ANNOTATION]: '2' } } })).status).toBe(200);
    for (const [i, n] of nodes.entries()) {
      await waitFor(() => n.spec().spec.os?.digest === DIGEST2);
      expect(n.spec().spec.os).toMatchObject({ digest: DIGEST2, activate: false });
      expect(n.spec().spec.maintenance).toBeUndefined();
      expect(n.spec().spec.kubernetes).toEqual(k8sBefore[i]);
    }
    // The agents stage it in their passive slot; the cluster stays Running on revision 1, no upgrade.
    const staged = (n: FakeNode) =>
      n.report({
        os: { phase: 'Staged', bootedSlot: 'B', activeSlot: 'B', digest: DIGEST, slots: { A: { digest: DIGEST2 }, B: { digest: DIGEST } } },
        kubernetes: { phase: 'Ready', ready: true, distribution: 'k3s', version: VERSION, nodeName: n.name },
      });
    for (const n of nodes) staged(n);
    const gens = nodes.map((n) => n.spec().generation);
    await new Promise((r) => setTimeout(r, 1500));
    expect(nodes.map((n) => n.spec().generation)).toEqual(gens); // stable: no spec flapping
    const quiet = await get('/api/v1/clusters/shop');
    expect(quiet.spec.profile.revision).toBe(1);
    expect(quiet.status).toMatchObject({ phase: 'Running', profileRevision: 1 });
    expect(quiet.status.upgrade).toBeUndefined();

    // Withdrawn (the rollout stopped before this cluster's turn): back to the running image's spec.
    expect((await patch('/api/v1/clusters/shop', { metadata: { annotations: { [PRESTAGE_ANNOTATION]: null } } })).status).toBe(200);
    for (const n of nodes) await waitFor(() => n.spec().spec.os?.digest === DIGEST && n.spec().spec.os.activate === undefined);
    for (const n of nodes) staged(n);
    expect((await patch('/api/v1/clusters/shop', { metadata: { annotations: { [PRESTAGE_ANNOTATION]: '2' } } })).status).toBe(200);
    for (const n of nodes) await waitFor(() => n.spec().spec.os?.digest === DIGEST2);
    for (const n of nodes) staged(n);

    // The upgrade: planned as a repave from the booted image, staging done at once, then the first window.
    expect((await patch('/api/v1/clusters/shop', { spec: { profile: { name: 'edge', revision: 2 } } })).status).toBe(200);
    const rolling = await waitFor(async () => {
      const c = await get('/api/v1/clusters/shop');
      return c.status.upgrade?.state === 'Rolling' && c;
    });
    expect(rolling.status.upgrade.nodes.map((n: any) => n.change)).toEqual(['repave', 'repave']);
    await waitFor(() => cp.spec().spec.maintenance?.cordon === true);
    expect(cp.spec().spec.os).toEqual({ image: `127.0.0.1:1/edge/os@${DIGEST2}`, digest: DIGEST2 });
    const reasons = (await get('/api/v1/events?fieldSelector=involvedObject.kind=Cluster,involvedObject.name=shop&limit=200')).items.map(
      (e: any) => e.spec.reason,
    );
    expect(reasons.filter((r: string) => r === 'NodeStaged')).toHaveLength(2);
  }, 60_000);
});
