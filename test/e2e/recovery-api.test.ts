import { osAttempt } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIGEST, FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

const VERSION = 'v1.30.4+k3s1';

/**
 * Failure recovery through the API and CLI with hand-driven nodes (what the agents would report):
 * a failed OS image is remembered per attempt and an operator clears it (`retry host`, a new
 * cluster), a stale fallback never fails a new cluster, and adding a node is Scaling, not Degraded.
 */
describe.each(DIALECTS)('failure recovery on %s', (dialect) => {
  let t: TestServer;
  let token: string;
  let viewer: string;
  const nodes: FakeNode[] = [];
  const node = async () => {
    const n = await FakeNode.create(t, token);
    nodes.push(n);
    return n;
  };
  const get = async (path: string) => (await t.api('GET', path)).body;
  const cluster = (name: string) => get(`/api/v1/clusters/${name}`);
  const clusterBody = (name: string, hosts: [string, 'control-plane' | 'worker'][]) => ({
    metadata: { name },
    spec: { profile: { name: 'edge', revision: 1 }, nodes: hosts.map(([host, role]) => ({ host, role })), variables: { site: 'shop-1' } },
  });
  const events = async (kind: string, name: string) =>
    (await get(`/api/v1/events?fieldSelector=involvedObject.kind=${kind},involvedObject.name=${name}`)).items as any[];
  const auditCount = async () => (await get('/api/v1/audit?limit=1000')).items.length as number;
  /** What an agent reports after the trial boot of the image it was sent fell back (OsStatus.failedImages). */
  const reportFellBack = (n: FakeNode) => {
    const os = n.spec().spec.os;
    const reason = 'health check "kubelet" failed after 3 attempt(s): ECONNREFUSED';
    n.report({
      os: {
        phase: 'FellBack',
        bootedSlot: 'A',
        activeSlot: 'A',
        slots: {},
        message: `fell back to slot A: ${reason}`,
        error: { phase: 'health', component: 'os', retryable: false, message: `fell back to slot A: ${reason}` },
        failedImages: [{ digest: os.digest, attempt: osAttempt(os), slot: 'B', reason, at: new Date().toISOString() }],
      },
    });
  };

  beforeAll(async () => {
    // Hand-driven nodes send no heartbeats: a long offline-after keeps them connected on a slow machine.
    t = await testServer(dialect, { offlineAfterSeconds: 300 });
    token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    expect((await t.api('POST', '/api/v1/users', { metadata: { name: 'vic' }, spec: { role: 'viewer' } })).status).toBe(201);
    viewer = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vic-t' }, spec: { user: 'vic' } })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('re-creating a cluster on a host that fell back starts clean; retry host asks for a new attempt, once', async () => {
    const a = await node();
    expect((await t.api('POST', '/api/v1/clusters', clusterBody('first', [[a.name, 'control-plane']]))).status).toBe(201);
    await waitFor(() => a.spec()?.spec?.os?.digest === DIGEST);
    reportFellBack(a);
    const failed = await waitFor(async () => {
      const c = await cluster('first');
      return c.status?.phase === 'Failed' && c;
    });
    expect(failed.status.nodes[0].message).toContain('fell back');
    // The host shows which image failed and why.
    const host = await get(`/api/v1/edgehosts/${a.name}`);
    expect(host.status.agent.managers.os.failedImages).toEqual([expect.objectContaining({ digest: DIGEST, reason: expect.stringContaining('kubelet') })]);

    // Delete and re-create on the same host: the agent is asked for a new attempt at the same image.
    const firstAttempt = osAttempt(a.spec().spec.os);
    expect((await t.api('DELETE', '/api/v1/clusters/first')).status).toBeLessThan(300);
    await waitFor(async () => (await get(`/api/v1/edgehosts/${a.name}`)).status.state === 'ready');
    expect((await t.api('POST', '/api/v1/clusters', clusterBody('second', [[a.name, 'control-plane']]))).status).toBe(201);
    const sent = await waitFor(() => a.spec()?.spec?.os?.digest === DIGEST && a.spec());
    expect(osAttempt(sent.spec.os)).not.toBe(firstAttempt);
    // The agent has not answered the new attempt yet (its last status is the old fallback, even at
    // the new generation): the new cluster does not inherit the stale message.
    a.report((await get(`/api/v1/edgehosts/${a.name}`)).status.agent.managers);
    await waitFor(async () => (await cluster('second')).status?.phase === 'Provisioning');
    await new Promise((r) => setTimeout(r, 1000)); // a few controller passes (500 ms each)
    const second = await cluster('second');
    expect(second.status.phase).toBe('Provisioning');
    expect(JSON.stringify(second.status.nodes)).not.toContain('fell back');
    expect((await events('Cluster', 'second')).map((e) => e.spec.reason)).not.toContain('ClusterFailed');

    // The new attempt falls back too: Failed, and it stays Failed (no loop; the spec is not re-sent with a new attempt).
    reportFellBack(a);
    await waitFor(async () => (await cluster('second')).status?.phase === 'Failed');
    const specsBefore = a.messages.filter((m) => m.type === 'spec').length;

    // An operator clears it: `edgeplane retry host NAME`, a new attempt (a new spec with another retry value), audited.
    const audits = await auditCount();
    const env = { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    const r = await cli(['retry', 'host', a.name], env);
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain(`edgehosts/${a.name} retried`);
    const retried = await waitFor(() => a.messages.filter((m) => m.type === 'spec').length > specsBefore && a.spec());
    expect(retried.spec.os.digest).toBe(DIGEST);
    expect(osAttempt(retried.spec.os)).not.toBe(osAttempt(sent.spec.os));
    a.report({ os: { phase: 'Rebooting', bootedSlot: 'A', activeSlot: 'A', slots: {}, message: 'rebooting into slot B' } });
    await waitFor(async () => (await cluster('second')).status?.phase === 'Provisioning');
    expect((await events('EdgeHost', a.name)).map((e) => e.spec.reason)).toContain('ImageRetryRequested');
    const audit = (await get('/api/v1/audit?limit=1000')).items;
    expect(audit.length).toBe(audits + 1);
    expect(audit.at(-1)).toMatchObject({ action: 'edgehost.retry', target: `edgehosts/${a.name}` });
  });

  it('refuses retry by a viewer, on an unknown host and on a host with no failed image, changing nothing', async () => {
    const b = await node();
    const before = await get(`/api/v1/edgehosts/${b.name}`);
    const audits = await auditCount();
    const specs = b.messages.filter((m) => m.type === 'spec').length;

    const byViewer = await t.api('POST', `/api/v1/edgehosts/${b.name}/retry`, undefined, { token: viewer });
    expect(byViewer.status).toBe(403);
    expect(byViewer.body.error.code).toBe('Forbidden');
    const unknown = await t.api('POST', '/api/v1/edgehosts/edge-000000000000/retry');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('NotFound');
    const nothing = await t.api('POST', `/api/v1/edgehosts/${b.name}/retry`);
    expect(nothing.status).toBe(409);
    expect(nothing.body.error).toMatchObject({ code: 'NoFailedImage', details: { host: b.name } });
    const viaCli = await cli(['retry', 'host', b.name], { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin });
    expect(viaCli.code).not.toBe(0);
    expect(viaCli.out).toContain('NoFailedImage');

    const after = await get(`/api/v1/edgehosts/${b.name}`);
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.spec).toEqual(before.spec);
    expect(await auditCount()).toBe(audits);
    expect(b.messages.filter((m) => m.type === 'spec').length).toBe(specs);
    expect((await events('EdgeHost', b.name)).map((e) => e.spec.reason)).not.toContain('ImageRetryRequested');
  });

  it('adding a node to a running cluster is Scaling with Normal events; a Ready node going NotReady is Degraded', async () => {
    const [cp, w] = [await node(), await node()];
    expect((await t.api('POST', '/api/v1/clusters', clusterBody('grow', [[cp.name, 'control-plane']]))).status).toBe(201);
    await waitFor(() => cp.spec()?.spec?.kubernetes);
    cp.reportReady(DIGEST, VERSION);
    await waitFor(async () => (await cluster('grow')).status?.phase === 'Running');

    const c = await cluster('grow');
    const put = await t.api('PUT', '/api/v1/clusters/grow', {
      metadata: { name: 'grow', resourceVersion: c.metadata.resourceVersion },
      spec: { ...c.spec, nodes: [...c.spec.nodes, { host: w.name, role: 'worker' }] },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const scaling = await waitFor(async () => {
      const x = await cluster('grow');
      return x.status?.phase === 'Scaling' && x;
    });
    expect(scaling.status.conditions.find((x: any) => x.type === 'Ready')).toMatchObject({ reason: 'NodesJoining' });
    await waitFor(() => w.spec()?.spec?.kubernetes);
    w.report({ kubernetes: { phase: 'Starting', ready: false, message: 'starting k3s-agent' } });
    await new Promise((r) => setTimeout(r, 1000)); // a few controller passes
    expect((await cluster('grow')).status.phase).toBe('Scaling');
    w.reportReady(DIGEST, VERSION);
    await waitFor(async () => (await cluster('grow')).status?.phase === 'Running');
    const evs = await events('Cluster', 'grow');
    expect(evs.filter((e) => e.spec.type === 'Warning')).toEqual([]);
    expect(evs.map((e) => e.spec.reason)).toEqual(expect.arrayContaining(['ClusterScaling', 'ClusterScaled']));

    // Real trouble: the worker that was Ready stops being Ready.
    w.report({
      os: { phase: 'Committed', bootedSlot: 'B', activeSlot: 'B', digest: DIGEST, slots: {} },
      kubernetes: { phase: 'NotReady', ready: false, version: VERSION, message: 'Kubelet stopped posting node status.' },
    });
    await waitFor(async () => (await cluster('grow')).status?.phase === 'Degraded');
    expect((await events('Cluster', 'grow')).map((e) => e.spec.reason)).toContain('ClusterDegraded');
  });
});
