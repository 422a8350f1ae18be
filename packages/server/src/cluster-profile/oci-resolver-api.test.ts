import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import freePort from '../../../../test/support/free-port.js';
import { type HttpEndpoint, httpEndpoint } from '../../../../test/support/http-endpoint.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] });
const profile = (name: string, image: string) => ({
  metadata: { name },
  spec: { layers: { os: { image }, kubernetes: { distribution: 'k3s', version: 'v1.31.0+k3s1' } }, variables: [] },
});

/**
 * An operator who names a hostile "registry" in a profile: through POST /api/v1/clusterprofiles the
 * server must not follow it anywhere, read without limit, or tell what it found; nothing is written.
 */
describe.each(DIALECTS)('OS image resolution through the API on %s', (dialect) => {
  let t: TestServer;
  let reg: HttpEndpoint;
  /** An internal service on another loopback port, which the server must never be made to call. */
  let internal: HttpEndpoint;

  beforeAll(async () => {
    internal = await httpEndpoint((_req, res) => res.end('{"token":"t"}'));
    reg = await httpEndpoint((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path === '/v2/good/os/manifests/1') return res.end(req.method === 'HEAD' ? undefined : manifest);
      if (path === '/v2/big/os/manifests/1') {
        if (req.method === 'HEAD') return res.end();
        const chunk = Buffer.alloc(1024 * 1024, 'a');
        let left = 50;
        res.on('close', () => {
          left = 0;
        });
        const more = () => {
          while (left-- > 0) if (!res.write(chunk)) return void res.once('drain', more);
          res.end();
        };
        return more();
      }
      if (path === '/v2/moved/os/manifests/1') {
        res.writeHead(302, { location: `http://${internal.host}/v2/moved/os/manifests/1` });
        return res.end();
      }
      if (path === '/v2/tok/os/manifests/1') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${internal.host}/internal/admin/delete-everything?confirm=yes"` });
        return res.end();
      }
      res.statusCode = 404;
      res.end();
    });
    // The allow-list names the hostile registry (so its tricks are reached) but not the internal service.
    t = await testServer(dialect, { allowedRegistries: [reg.host] });
  });
  afterAll(async () => {
    await t?.close();
    await reg?.close();
    await internal?.close();
  });

  const nothingWritten = async () => {
    expect((await t.api('GET', '/api/v1/clusterprofiles')).body.items.map((p: { metadata: { name: string } }) => p.metadata.name)).toEqual(
      expect.not.arrayContaining(['bad']),
    );
    expect((await t.api('GET', '/api/v1/clusterprofiles/bad/revisions')).status).toBe(404);
  };

  it('refuses oversized manifests, redirects and foreign token realms with one generic message', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const messages = new Set<string>();
    for (const image of [`${reg.host}/big/os:1`, `${reg.host}/moved/os:1`, `${reg.host}/tok/os:1`, `${reg.host}/missing/os:1`]) {
      const r = await t.api('POST', '/api/v1/clusterprofiles', profile('bad', image));
      expect(r.status, image).toBe(422);
      expect(r.body.error.code).toBe('ImageResolveFailed');
      expect(r.body.error.details).toEqual({ image });
      messages.add(r.body.error.message.replace(image, '<ref>'));
      await nothingWritten();
    }
    expect(internal.hits).toEqual([]);
    expect([...messages]).toEqual([
      'cannot resolve image "<ref>": registry unreachable or image not found (pin it by digest, <repository>@sha256:..., to skip resolution)',
    ]);
    // A closed port on loopback: refused by the allow-list before any connection is tried.
    const closed = await t.api('POST', '/api/v1/clusterprofiles', profile('bad', `${dead}/x/os:1`));
    expect(closed.body.error).toMatchObject({ code: 'RegistryNotAllowed', details: { registry: dead } });
    expect(closed.status).toBe(422);
    await nothingWritten();
  });

  it('allows listed registries only, and keeps a refused update from changing the profile', async () => {
    const ok = await t.api('POST', '/api/v1/clusterprofiles', profile('good', `${reg.host}/good/os:1`));
    expect(ok.status).toBe(201);
    expect(ok.body.status.latestRevision).toBe(1);
    for (const image of [`${internal.host}/good/os:1`, `${internal.host}/good/os@sha256:${'e'.repeat(64)}`]) {
      const r = await t.api('PUT', '/api/v1/clusterprofiles/good', profile('good', image));
      expect(r.body.error.code, image).toBe('RegistryNotAllowed');
      expect(r.status).toBe(422);
    }
    const after = await t.api('GET', '/api/v1/clusterprofiles/good');
    expect(after.body.metadata.resourceVersion).toBe(ok.body.metadata.resourceVersion);
    expect((await t.api('GET', '/api/v1/clusterprofiles/good/revisions')).body.items).toHaveLength(1);
    expect(internal.hits).toEqual([]);
  });
});
