import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../../test/support/db.js';
import { waitFor } from '../../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../../test/support/server.js';
import { DIGEST, FakeNode, profileBody } from '../cluster-test-fleet.js';

const VERSION = 'v1.30.4+k3s1';
const DIGEST2 = `sha256:${'b'.repeat(64)}`;
const DIGEST3 = `sha256:${'c'.repeat(64)}`;
const STEPS = ['staged', 'started', 'draining', 'rebooting', 'verifying', 'done'];

type Times = Partial<Record<string, string>>;

/** status.upgrade.nodes[].times on a hand-driven node: each step's time once, in order, cleared by a retry. */
describe.each(DIALECTS)('upgrade step times on %s', (dialect) => {
  let t: TestServer;
  let node: FakeNode;
  const get = async (path: string) => (await t.api('GET', path)).body;
  const patch = (path: string, body: unknown) => t.api('PATCH', path, body, { contentType: 'application/merge-patch+json' });
  const times = async (): Promise<Times> => (await get('/api/v1/clusters/solo')).status.upgrade?.nodes[0]?.times ?? {};
  const until = (pred: (x: Times) => boolean) => waitFor(async () => ((x) => pred(x) && x)(await times()), 15_000);
  const revision = async (digest: string) => {
    const body = profileBody('edge');
    body.spec.layers.os.image = `127.0.0.1:1/edge/os@${digest}`;
    expect((await t.api('PUT', '/api/v1/clusterprofiles/edge', body)).status).toBe(200);
    const rev = (await get('/api/v1/clusterprofiles/edge')).status.latestRevision as number;
    expect((await patch('/api/v1/clusters/solo', { spec: { profile: { name: 'edge', revision: rev } } })).status).toBe(200);
  };
  const k8s = { phase: 'Ready', ready: true, distribution: 'k3s', version: VERSION };
  const os = (phase: string, booted: string, digest: string) => ({
    phase,
    bootedSlot: booted,
    activeSlot: 'A',
    digest,
    slots: { A: { digest: DIGEST }, B: { digest: booted === 'B' ? digest : DIGEST2 } },
  });

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 30, heartbeatIntervalSeconds: 1 });
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    node = await FakeNode.create(t, token);
    const spec = { profile: { name: 'edge', revision: 1 }, nodes: [{ host: node.name, role: 'control-plane' }], variables: { site: 's1' } };
    expect((await t.api('POST', '/api/v1/clusters', { metadata: { name: 'solo' }, spec })).status).toBe(201);
    await waitFor(() => node.spec()?.spec?.kubernetes);
    node.reportReady(DIGEST, VERSION);
    await waitFor(async () => (await get('/api/v1/clusters/solo')).status.profileRevision === 1);
  });
  afterAll(async () => {
    node?.close();
    await t?.close();
  });

  it('records staged, started, draining, rebooting, trial and commit times in order, each once', async () => {
    await revision(DIGEST2);
    await waitFor(() => node.spec()?.spec?.os?.activate === false && node.spec().spec.os.digest === DIGEST2);
    node.report({ os: os('Staged', 'A', DIGEST), kubernetes: k8s });
    await waitFor(() => node.spec()?.spec?.maintenance?.cordon === true);
    const opened = await until((x) => !!x.started);
    expect(Object.keys(opened).sort()).toEqual(['staged', 'started']);

    node.report({ os: os('Staged', 'A', DIGEST), kubernetes: k8s, maintenance: { phase: 'Draining', cordoned: true } });
    const drained = await until((x) => !!x.draining);
    // Later reports never move a recorded time.
    node.report({ os: os('Staged', 'A', DIGEST), kubernetes: k8s, maintenance: { phase: 'Drained', cordoned: true } });
    node.report({ os: os('Rebooting', 'A', DIGEST), kubernetes: k8s, maintenance: { phase: 'Drained', cordoned: true } });
    await until((x) => !!x.rebooting);
    node.report({
      os: os('Verifying', 'B', DIGEST2),
      kubernetes: { ...k8s, ready: false, phase: 'Starting' },
      maintenance: { phase: 'Drained', cordoned: true },
    });
    await until((x) => !!x.verifying);
    node.report({ os: os('Committed', 'B', DIGEST2), kubernetes: k8s, maintenance: { phase: 'Drained', cordoned: true } });
    await waitFor(() => node.spec()?.spec?.os?.digest === DIGEST2 && !node.spec().spec.maintenance);
    node.report({ os: os('Committed', 'B', DIGEST2), kubernetes: k8s, maintenance: { phase: 'None', cordoned: false } });
    const done = await until((x) => !!x.done);

    expect(Object.keys(done).sort()).toEqual([...STEPS].sort());
    expect(done.draining).toBe(drained.draining);
    expect(done.staged).toBe(opened.staged);
    const at = STEPS.map((s) => Date.parse(done[s]!));
    expect(at).toEqual([...at].sort((a, b) => a - b));
    const upgrade = (await get('/api/v1/clusters/solo')).status.upgrade;
    expect(upgrade).toMatchObject({ state: 'Succeeded', nodes: [{ phase: 'Done' }] });
    expect(Date.parse(upgrade.startedAt)).toBeLessThanOrEqual(at[0]);
  });

  it('gives a step passed unseen no time, records none after a later one, and a retry clears the window', async () => {
    await revision(DIGEST3);
    await waitFor(() => node.spec()?.spec?.os?.activate === false && node.spec().spec.os.digest === DIGEST3);
    const slots = { A: { digest: DIGEST3 }, B: { digest: DIGEST2 } };
    node.report({ os: { ...os('Staged', 'B', DIGEST2), slots }, kubernetes: k8s, maintenance: { phase: 'None', cordoned: false } });
    await waitFor(() => node.spec()?.spec?.maintenance?.cordon === true);
    // The first report after the window opened already shows the trial boot: no drain or reboot time.
    node.report({ os: { ...os('Verifying', 'A', DIGEST3), slots }, kubernetes: k8s, maintenance: { phase: 'Drained', cordoned: true } });
    await until((x) => !!x.verifying);
    // A reboot seen after the trial (the fallback's) is not the window's reboot.
    node.report({ os: { ...os('Rebooting', 'A', DIGEST3), slots }, kubernetes: k8s, maintenance: { phase: 'Drained', cordoned: true } });
    node.report({
      os: { ...os('FellBack', 'B', DIGEST2), slots, message: 'trial boot failed' },
      kubernetes: k8s,
      maintenance: { phase: 'Drained', cordoned: true },
    });
    const failed = await until((x) => !!x.failed);
    expect(Object.keys(failed).sort()).toEqual(['failed', 'staged', 'started', 'verifying']);
    const status = (await get('/api/v1/clusters/solo')).status.upgrade;
    expect(status).toMatchObject({ state: 'Failed', failedNode: node.name, nodes: [{ phase: 'FellBack' }] });

    // Retry: the node's window starts over, so its old window times go; the staged image's time stays.
    expect((await t.api('POST', '/api/v1/clusters/solo/retry')).body).toMatchObject({ action: 'retry', state: 'Rolling' });
    const again = await until((x) => !!x.started && !x.failed);
    expect(again.staged).toBe(failed.staged);
    expect(again.verifying).toBeUndefined();
    expect(Date.parse(again.started!)).toBeGreaterThanOrEqual(Date.parse(failed.failed!));
  });
});
