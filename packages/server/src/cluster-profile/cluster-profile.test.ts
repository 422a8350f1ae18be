import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import freePort from '../../../../test/support/free-port.js';
import { pushOciLayout, startRegistry, type TestRegistry } from '../../../../test/support/registry.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

const run = promisify(execFile);

const profile = (name: string, image: string, over: Record<string, unknown> = {}) => ({
  metadata: { name },
  spec: {
    layers: {
      os: { image },
      kubernetes: { distribution: 'rke2', version: 'v1.30.4+rke2r1', config: {} },
      addons: [],
    },
    variables: [],
    ...over,
  },
});

describe('cluster profile revisions against a real OCI registry', () => {
  let registry: TestRegistry;
  let layout: string;
  const digests: Record<string, string> = {};

  beforeAll(async () => {
    registry = await startRegistry();
    layout = join(await mkdtemp(join(tmpdir(), 'ep-layout-')), 'os');
    await run('umoci', ['init', '--layout', layout]);
    for (const tag of ['1', '2']) {
      await run('umoci', ['new', '--image', `${layout}:${tag}`]);
      digests[tag] = await pushOciLayout(layout, `${registry.host}/edge/os:${tag}`);
    }
    expect(digests['1']).not.toBe(digests['2']);
  });
  afterAll(async () => {
    await registry?.stop();
    if (layout) await rm(join(layout, '..'), { recursive: true, force: true });
  });

  describe.each(DIALECTS)('on %s', (dialect) => {
    let t: TestServer;
    beforeAll(async () => {
      t = await testServer(dialect);
    });
    afterAll(async () => t?.close());
    const revisions = async (name: string) => (await t.api('GET', `/api/v1/clusterprofiles/${name}/revisions`)).body.items;

    it('pins the OS image to its manifest digest in a new revision on every spec change', async () => {
      const created = await t.api('POST', '/api/v1/clusterprofiles', profile('edge', `${registry.host}/edge/os:1`));
      expect(created.status).toBe(201);
      expect(created.body.status).toEqual({ latestRevision: 1, osImageDigest: digests['1'] });
      // The tag moves to another image: a new revision pins the new digest; revision 1 stays as it was.
      const put = await t.api('PUT', '/api/v1/clusterprofiles/edge', profile('edge', `${registry.host}/edge/os:2`));
      expect(put.body.status).toEqual({ latestRevision: 2, osImageDigest: digests['2'] });
      const patched = await t.api('PATCH', '/api/v1/clusterprofiles/edge', { spec: { description: 'shops' } }, { contentType: 'application/merge-patch+json' });
      expect(patched.body.status.latestRevision).toBe(3);
      // No spec change (labels only): no revision.
      const labels = await t.api(
        'PATCH',
        '/api/v1/clusterprofiles/edge',
        { metadata: { labels: { a: 'b' } } },
        { contentType: 'application/merge-patch+json' },
      );
      expect(labels.body.status.latestRevision).toBe(3);
      const revs = await revisions('edge');
      expect(revs.map((r: any) => [r.revision, r.spec.layers.os.digest])).toEqual([
        [1, digests['1']],
        [2, digests['2']],
        [3, digests['2']],
      ]);
      expect(revs[0].spec.layers.os.image).toBe(`${registry.host}/edge/os:1`);
      const one = await t.api('GET', '/api/v1/clusterprofiles/edge/revisions/1');
      expect(one.body).toMatchObject({ kind: 'ClusterProfileRevision', profile: 'edge', revision: 1 });
      expect((await t.api('GET', '/api/v1/clusterprofiles/edge/revisions/9')).body.error.code).toBe('NotFound');
      expect((await t.api('GET', '/api/v1/clusterprofiles/edge/revisions/x')).body.error.code).toBe('ValidationFailed');
      // A reference with a digest is taken as written.
      const pinned = await t.api('POST', '/api/v1/clusterprofiles', profile('pinned', `${registry.host}/edge/os@${digests['1']}`));
      expect(pinned.body.status.osImageDigest).toBe(digests['1']);
    });

    it('refuses what cannot be pinned or validated, writing nothing', async () => {
      const validSpec = () => ({ layers: { os: { image: `${registry.host}/edge/os:1` }, kubernetes: { distribution: 'k3s', version: 'v1.31.0+k3s1' } } });
      const dead = `127.0.0.1:${await freePort()}`;
      const cases: [unknown, string][] = [
        [profile('bad', `${dead}/edge/os:1`), 'ImageResolveFailed'],
        [profile('bad', `${registry.host}/edge/os:nope`), 'ImageResolveFailed'],
        [profile('bad', `${registry.host}/other/os:1`), 'ImageResolveFailed'],
        [profile('bad', 'os:1'), 'ValidationFailed'],
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            layers: { os: { image: `${registry.host}/edge/os:1` }, kubernetes: { distribution: 'rke2', version: 'v1.30.4+k3s1' } },
          }),
          'ValidationFailed',
        ],
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            layers: { os: { image: `${registry.host}/edge/os:1` }, kubernetes: { distribution: 'k3s', version: 'v1.22.0+k3s1' } },
          }),
          'UnsupportedKubernetesVersion',
        ],
        // kubeadm brings no CNI: without a network layer and its add-on no node would ever be Ready.
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            layers: { os: { image: `${registry.host}/edge/os:1` }, kubernetes: { distribution: 'kubeadm', version: 'v1.30.4' } },
          }),
          'ValidationFailed',
        ],
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            layers: { os: { image: `${registry.host}/edge/os:1` }, kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' }, network: { cni: 'cilium' } },
          }),
          'ValidationFailed',
        ],
        // A typo k3s would skip with a warning, and the storage layer nothing ever applied.
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            layers: {
              os: { image: `${registry.host}/edge/os:1` },
              kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1', config: { 'kublet-arg': ['max-pods=150'] } },
            },
          }),
          'ValidationFailed',
        ],
        [
          profile('bad', `${registry.host}/edge/os:1`, { ...validSpec(), layers: { ...validSpec().layers, storage: { csi: 'local-path' } } }),
          'ValidationFailed',
        ],
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            layers: { os: { image: `${registry.host}/edge/os:1` }, kubernetes: { distribution: 'minikube', version: 'v1.30.0' } },
          }),
          'ValidationFailed',
        ],
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            layers: {
              os: { image: `${registry.host}/edge/os:1` },
              kubernetes: { distribution: 'k3s', version: 'v1.31.0+k3s1', config: { 'tls-san': '${var.vip}' } },
            },
          }),
          'UndeclaredVariable',
        ],
        [profile('bad', `${registry.host}/edge/os:1`, { ...validSpec(), healthChecks: [{ name: 'kubelet', type: 'http' }] }), 'ValidationFailed'],
        [
          profile('bad', `${registry.host}/edge/os:1`, {
            ...validSpec(),
            healthChecks: [{ name: 'kubelet', type: 'http', url: 'http://${var.nodeip}:10248/healthz' }],
          }),
          'UndeclaredVariable',
        ],
      ];
      for (const [body, code] of cases) {
        const r = await t.api('POST', '/api/v1/clusterprofiles', body);
        expect(r.body.error?.code, JSON.stringify(r.body)).toBe(code);
      }
      expect((await t.api('GET', '/api/v1/clusterprofiles/bad')).status).toBe(404);
      expect((await t.api('GET', '/api/v1/clusterprofiles/bad/revisions')).status).toBe(404);
      // A failed update leaves the profile and its revisions as they were.
      const before = await t.api('GET', '/api/v1/clusterprofiles/edge');
      const r = await t.api('PUT', '/api/v1/clusterprofiles/edge', profile('edge', `${dead}/edge/os:1`));
      expect(r.body.error.code).toBe('ImageResolveFailed');
      expect(r.status).toBe(422);
      const after = await t.api('GET', '/api/v1/clusterprofiles/edge');
      expect(after.body.metadata.resourceVersion).toBe(before.body.metadata.resourceVersion);
      expect((await revisions('edge')).length).toBe(3);
    });

    it('deletes an unused profile with its revisions', async () => {
      expect((await t.api('DELETE', '/api/v1/clusterprofiles/pinned')).status).toBe(200);
      expect((await t.api('GET', '/api/v1/clusterprofiles/pinned/revisions')).status).toBe(404);
    });
  });
});
