import type { AuditEntry } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { DIGEST, FakeNode, profileBody } from '../cluster/cluster-test-fleet.js';
import { hostNameForDevice } from '../edgehost/edgehost.service.js';

type Res = { status: number; body: any };
type Expected = { actor: string; action: string; target: string; details?: Record<string, unknown> };

const VERSION = 'v1.30.4+k3s1';
const KUBECONFIG =
  'apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\nusers:\n- name: default\n  user:\n    token: kube-very-secret\n';
const merge = { contentType: 'application/merge-patch+json' };

/**
 * Every security-relevant action through the public API makes exactly one audit entry naming who,
 * what and on which target; a refused one (403, 4xx, 409) makes none. Secrets stay out.
 */
describe.each(DIALECTS)('audit coverage on %s', (dialect) => {
  let t: TestServer;
  let op: string;
  let view: string;
  let autoSecret: string;
  const nodes: FakeNode[] = [];
  const asOp = { token: '' };
  const asViewer = { token: '' };

  const entriesAfter = async (seq: number) => (await t.api('GET', `/api/v1/audit?limit=1000&continue=${seq}`)).body.items as AuditEntry[];
  const lastSeq = async () => {
    let seq = 0;
    for (let page = await entriesAfter(0); page.length; page = await entriesAfter(seq)) seq = page[page.length - 1].seq;
    return seq;
  };
  /** Runs `call`, which must succeed, and checks it made exactly one entry. */
  async function one(call: () => Promise<Res>, want: Expected): Promise<Res> {
    const mark = await lastSeq();
    const r = await call();
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    const made = await entriesAfter(mark);
    expect(made.map((e) => `${e.action} ${e.target}`)).toEqual([`${want.action} ${want.target}`]);
    expect(made[0]).toMatchObject({ actor: want.actor, action: want.action, target: want.target, details: want.details ?? {} });
    return r;
  }
  /** Runs `call`, which must be refused with `status`, and checks it made no entry. */
  async function none(call: () => Promise<Res>, status: number): Promise<void> {
    const mark = await lastSeq();
    const r = await call();
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    expect(await entriesAfter(mark)).toEqual([]);
  }

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1, rolloutIntervalMs: 3_600_000 });
    for (const [name, role] of [
      ['olga', 'operator'],
      ['vic', 'viewer'],
    ]) {
      expect((await t.api('POST', '/api/v1/users', { metadata: { name }, spec: { role } })).status).toBe(201);
      const tok = await t.api('POST', '/api/v1/apitokens', { metadata: { name: `${name}-t` }, spec: { user: name } });
      if (role === 'operator') op = tok.body.status.token;
      else view = tok.body.status.token;
    }
    asOp.token = op;
    asViewer.token = view;
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('records token rotation, pairing claims, host spec edits, deny-list changes and resets', async () => {
    const created = await one(() => t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } }, asOp), {
      actor: 'olga',
      action: 'registrationtoken.create',
      target: 'registrationtokens/auto',
      details: { role: 'operator' },
    });
    const installer = (body: unknown, o = asOp) => t.api('POST', '/api/v1/registrationtokens/auto/installer?format=json', body, o);
    const rotated = await one(() => installer({ rotate: true }), {
      actor: 'olga',
      action: 'registrationtoken.rotate',
      target: 'registrationtokens/auto',
      details: { role: 'operator', format: 'json' },
    });
    autoSecret = (rotated.body.files['user-data'] as string).match(/eprt_[A-Za-z0-9_-]+/)![0];
    expect(autoSecret).not.toBe(created.body.status.token);
    // An installer for the secret the caller already holds changes nothing: no entry.
    const same = await installer({ tokenSecret: autoSecret });
    expect(same.body.rotated).toBe(false);
    await none(() => installer({ rotate: true }, asViewer), 403);
    await none(() => t.api('POST', '/api/v1/registrationtokens/nope/installer', { rotate: true }, asOp), 404);

    // Pairing: an operator claims the code a device shows.
    const d = await TestDevice.create();
    const start = await fetch(`${t.url}/agent/v1/pairings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(await d.pairingStartBody()),
    });
    const code = ((await start.json()) as { code: string }).code;
    await none(() => t.api('POST', `/api/v1/pairings/${code}/claim`, {}, asViewer), 403);
    const claim = await one(() => t.api('POST', `/api/v1/pairings/${code}/claim`, { labels: { tier: 'edge' } }, asOp), {
      actor: 'olga',
      action: 'pairing.claim',
      target: `edgehosts/${hostNameForDevice(d.uid)}`,
      details: { role: 'operator', deviceUid: d.uid, project: 'default' },
    });
    expect(claim.body.deviceUid).toBe(d.uid);
    await none(() => t.api('POST', `/api/v1/pairings/${code}/claim`, {}, asOp), 409);

    // Host spec edits name the keys they changed; the deny-list has its own actions.
    const n = await FakeNode.create(t, autoSecret, false);
    nodes.push(n);
    const host = `/api/v1/edgehosts/${n.name}`;
    const target = `edgehosts/${n.name}`;
    await one(() => t.api('PATCH', host, { spec: { displayName: 'Shop 1 till' } }, { ...merge, ...asOp }), {
      actor: 'olga',
      action: 'edgehost.update',
      target,
      details: { role: 'operator', changed: ['displayName'] },
    });
    const current = (await t.api('GET', host)).body;
    await one(() => t.api('PUT', host, { metadata: { name: n.name }, spec: { ...current.spec, displayName: 'Till 2' } }, asOp), {
      actor: 'olga',
      action: 'edgehost.update',
      target,
      details: { changed: ['displayName'] },
    });
    await one(() => t.api('PATCH', host, { spec: { denied: true } }, { ...merge, ...asOp }), {
      actor: 'olga',
      action: 'edgehost.deny',
      target,
      details: { changed: ['denied'] },
    });
    await one(() => t.api('PATCH', host, { spec: { denied: null } }, { ...merge, ...asOp }), {
      actor: 'olga',
      action: 'edgehost.undeny',
      target,
      details: { changed: ['denied'] },
    });
    await none(() => t.api('PATCH', host, { spec: { denied: true } }, { ...merge, ...asViewer }), 403);
    await none(() => t.api('PATCH', host, { spec: { deviceUid: 'another-device-uid' } }, { ...merge, ...asOp }), 400);
    expect((await t.api('GET', host)).body.spec.denied).toBeUndefined();

    // Pre-registration and a deny-list entry ahead of time; the pairing key shown once stays out of the log.
    const pre = await one(() => t.api('POST', '/api/v1/edgehosts', { metadata: { name: 'till-9' }, spec: { deviceUid: 'till-9-uid-0001' } }, asOp), {
      actor: 'olga',
      action: 'edgehost.preregister',
      target: 'edgehosts/till-9',
    });
    await one(() => t.api('POST', '/api/v1/edgehosts', { metadata: { name: 'stolen' }, spec: { deviceUid: 'stolen-uid-0001', denied: true } }, asOp), {
      actor: 'olga',
      action: 'edgehost.deny',
      target: 'edgehosts/stolen',
    });

    // Host reset: a free host only.
    await none(() => t.api('POST', `${host}/reset`, undefined, asViewer), 403);
    await none(() => t.api('POST', '/api/v1/edgehosts/edge-000000000000/reset', undefined, asOp), 404);
    await one(() => t.api('POST', `${host}/reset`, undefined, asOp), { actor: 'olga', action: 'edgehost.reset', target });

    const log = JSON.stringify(await entriesAfter(0));
    for (const secret of [autoSecret, created.body.status.token, pre.body.status.pairingKey, op, view]) expect(log).not.toContain(secret);
  });

  it('records profile, cluster, kubeconfig and upgrade actions', async () => {
    const edge = profileBody('edge');
    await none(() => t.api('POST', '/api/v1/clusterprofiles', edge, asViewer), 403);
    await none(() => t.api('POST', '/api/v1/clusterprofiles', { ...edge, spec: { ...edge.spec, variables: [] } }, asOp), 422);
    await one(() => t.api('POST', '/api/v1/clusterprofiles', edge, asOp), {
      actor: 'olga',
      action: 'clusterprofile.create',
      target: 'clusterprofiles/edge',
      details: { role: 'operator', revision: 1, osImageDigest: DIGEST },
    });
    await one(() => t.api('POST', '/api/v1/clusterprofiles', profileBody('spare'), asOp), {
      actor: 'olga',
      action: 'clusterprofile.create',
      target: 'clusterprofiles/spare',
      details: { revision: 1 },
    });
    await one(() => t.api('DELETE', '/api/v1/clusterprofiles/spare', undefined, asOp), {
      actor: 'olga',
      action: 'clusterprofile.delete',
      target: 'clusterprofiles/spare',
    });

    const n = await FakeNode.create(t, autoSecret);
    nodes.push(n);
    const spec = { profile: { name: 'edge', revision: 1 }, nodes: [{ host: n.name, role: 'control-plane' }], variables: { site: 's1' } };
    await none(() => t.api('POST', '/api/v1/clusters', { metadata: { name: 'prod' }, spec }, asViewer), 403);
    await one(() => t.api('POST', '/api/v1/clusters', { metadata: { name: 'prod' }, spec }, asOp), {
      actor: 'olga',
      action: 'cluster.create',
      target: 'clusters/prod',
    });
    await waitFor(() => n.spec()?.spec?.kubernetes);
    n.reportReady(DIGEST, VERSION, { kubeconfig: KUBECONFIG });
    await waitFor(async () => (await t.api('GET', '/api/v1/clusters/prod')).body.status.kubeconfigAvailable === true);
    await none(() => t.api('GET', '/api/v1/clusters/prod/kubeconfig', undefined, asViewer), 403);
    await none(() => t.api('GET', '/api/v1/clusters/nope/kubeconfig', undefined, asOp), 404);
    const kc = await one(kcJson, {
      actor: 'olga',
      action: 'cluster.kubeconfig',
      target: 'clusters/prod',
    });
    expect(JSON.stringify(kc.body)).toContain('kube-very-secret');

    // A new profile revision rolled out to the cluster: an upgrade to pause, resume and cancel.
    await none(() => t.api('POST', '/api/v1/clusters/prod/pause', undefined, asOp), 409);
    const rev2 = profileBody('edge');
    Object.assign(rev2.spec.layers, {
      kubernetes: { distribution: 'k3s', version: VERSION, config: { 'cluster-domain': 'cluster.local', 'kubelet-arg': 'max-pods=150' } },
    });
    await one(() => t.api('PUT', '/api/v1/clusterprofiles/edge', rev2, asOp), {
      actor: 'olga',
      action: 'clusterprofile.update',
      target: 'clusterprofiles/edge',
      details: { revision: 2 },
    });
    const gen = n.spec().generation;
    await one(() => t.api('PATCH', '/api/v1/clusters/prod', { spec: { profile: { name: 'edge', revision: 2 } } }, { ...merge, ...asOp }), {
      actor: 'olga',
      action: 'cluster.update',
      target: 'clusters/prod',
      details: { changed: ['profile'] },
    });
    await waitFor(() => n.spec().generation > gen);
    await none(() => t.api('POST', '/api/v1/clusters/prod/pause', undefined, asViewer), 403);
    for (const action of ['pause', 'resume']) {
      await one(() => t.api('POST', `/api/v1/clusters/prod/${action}`, undefined, asOp), {
        actor: 'olga',
        action: `cluster.${action}`,
        target: 'clusters/prod',
      });
    }
    await none(() => t.api('POST', '/api/v1/clusters/prod/retry', undefined, asOp), 409);
    await one(() => t.api('POST', '/api/v1/clusters/prod/cancel', undefined, asOp), { actor: 'olga', action: 'cluster.cancel', target: 'clusters/prod' });
    await none(() => t.api('DELETE', '/api/v1/clusterprofiles/edge', undefined, asOp), 409);
    await one(() => t.api('DELETE', '/api/v1/clusters/prod', undefined, asOp), { actor: 'olga', action: 'cluster.delete', target: 'clusters/prod' });

    expect(JSON.stringify(await entriesAfter(0))).not.toContain('kube-very-secret');
  }, 60_000);

  it('records rollout actions', async () => {
    const body = {
      metadata: { name: 'r1' },
      spec: { targets: { selector: 'fleet=none' }, profile: { name: 'edge', revision: 1 }, strategy: { batches: [{ limit: '100%' }] } },
    };
    await none(() => t.api('POST', '/api/v1/rollouts', body, asOp), 403);
    await none(() => t.api('POST', '/api/v1/rollouts', { ...body, spec: { ...body.spec, profile: { name: 'edge', revision: 9 } } }), 422);
    await one(() => t.api('POST', '/api/v1/rollouts', body), { actor: 'admin', action: 'rollout.create', target: 'rollouts/r1', details: { role: 'admin' } });
    await none(() => t.api('POST', '/api/v1/rollouts/r1/pause', undefined, asOp), 403);
    for (const action of ['pause', 'resume'])
      await one(() => t.api('POST', `/api/v1/rollouts/r1/${action}`), { actor: 'admin', action: `rollout.${action}`, target: 'rollouts/r1' });
    await none(() => t.api('POST', '/api/v1/rollouts/r1/approve'), 409);
    await none(() => t.api('PATCH', '/api/v1/rollouts/r1', { spec: { strategy: { batches: [{ limit: '50%' }] } } }, merge), 409);
    await one(() => t.api('POST', '/api/v1/rollouts/r1/abort'), { actor: 'admin', action: 'rollout.abort', target: 'rollouts/r1' });
    await one(() => t.api('DELETE', '/api/v1/rollouts/r1'), { actor: 'admin', action: 'rollout.delete', target: 'rollouts/r1' });
    expect((await t.api('GET', '/api/v1/audit/verify')).body.ok).toBe(true);
  });

  /** The kubeconfig answer as JSON (the test helper parses JSON only). */
  async function kcJson(): Promise<Res> {
    const res = await fetch(`${t.url}/api/v1/clusters/prod/kubeconfig`, { headers: { authorization: `Bearer ${op}`, accept: 'application/json' } });
    return { status: res.status, body: await res.json() };
  }
});
