import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import freePort from '../../../../test/support/free-port.js';
import { type HttpEndpoint, httpEndpoint } from '../../../../test/support/http-endpoint.js';
import { ImageResolver, isLoopbackRegistry, MAX_REGISTRY_BODY_BYTES, parseImageRef } from './oci-resolver.js';

const GENERIC = /^cannot resolve image ".*": registry unreachable or image not found/;

/**
 * The token-auth and header-less paths, which Debian's docker-registry (used in the API tests)
 * does not exercise without a token service, and the ways a hostile "registry" could abuse the
 * server's requests: a minimal HTTP endpoint speaking just that part of the distribution API.
 */
describe('ImageResolver', () => {
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] });
  const bodyDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  let reg: HttpEndpoint;
  /** Another port on the same host: the target of redirects and foreign token realms. */
  let other: HttpEndpoint;
  const bigChunk = Buffer.alloc(1024 * 1024, 'a');
  let bigStreamed = 0;

  beforeAll(async () => {
    other = await httpEndpoint((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ token: 'stolen' }));
    });
    reg = await httpEndpoint((req, res, host) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/token') {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({ token: `t-${url.searchParams.get('scope')}` }));
      }
      if (url.pathname === '/v2/private/os/manifests/1') {
        if (req.headers.authorization !== 'Bearer t-repository:private/os:pull') {
          res.statusCode = 401;
          res.setHeader('www-authenticate', `Bearer realm="http://${host}/token",service="test",scope="repository:private/os:pull"`);
          return res.end();
        }
        res.setHeader('docker-content-digest', `sha256:${'c'.repeat(64)}`);
        return res.end(req.method === 'HEAD' ? undefined : manifest);
      }
      if (url.pathname === '/v2/plain/os/manifests/1') {
        // No Docker-Content-Digest: the resolver hashes the manifest it GETs.
        if (req.method === 'HEAD') return res.end();
        return res.end(manifest);
      }
      if (url.pathname === '/v2/big/os/manifests/1') {
        // 50 MB without Content-Length (chunked), so only counting the stream can stop it.
        if (req.method === 'HEAD') return res.end();
        let left = 50;
        const more = () => {
          while (left > 0) {
            left--;
            bigStreamed += bigChunk.length;
            if (!res.write(bigChunk)) return void res.once('drain', more);
          }
          res.end();
        };
        res.on('close', () => {
          left = 0;
        });
        return more();
      }
      if (url.pathname === '/v2/declared/os/manifests/1') {
        if (req.method === 'HEAD') return res.end();
        res.setHeader('content-length', String(50 * 1024 * 1024));
        return res.end('{}'.padEnd(1024, ' '));
      }
      if (url.pathname === '/v2/moved/os/manifests/1') {
        res.statusCode = 302;
        res.setHeader('location', `http://${other.host}/v2/moved/os/manifests/1`);
        return res.end();
      }
      if (url.pathname === '/v2/realm/os/manifests/1') {
        res.statusCode = 401;
        res.setHeader('www-authenticate', `Bearer realm="http://${other.host}/internal/admin/delete-everything?confirm=yes",service="x"`);
        return res.end();
      }
      if (url.pathname === '/v2/bigtoken/os/manifests/1') {
        if (req.headers.authorization) return res.end();
        res.statusCode = 401;
        res.setHeader('www-authenticate', `Bearer realm="http://${host}/hugetoken"`);
        return res.end();
      }
      if (url.pathname === '/hugetoken') {
        res.write('{"token":"');
        for (let i = 0; i < 6; i++) res.write(bigChunk);
        return res.end('"}');
      }
      if (url.pathname === '/v2/slow/os/manifests/1') return; // never answers
      res.statusCode = 404;
      res.end();
    });
  });
  afterAll(async () => {
    await reg?.close();
    await other?.close();
  });

  it('gets an anonymous Bearer token from the registry itself when it asks for one', async () => {
    const r = new ImageResolver();
    expect(await r.resolveDigest(`${reg.host}/private/os:1`)).toBe(`sha256:${'c'.repeat(64)}`);
    expect(reg.hits.some((s) => s.startsWith('GET /token?service=test&scope=repository%3Aprivate%2Fos%3Apull'))).toBe(true);
  });

  it('hashes the manifest when the registry sends no digest header', async () => {
    expect(await new ImageResolver().resolveDigest(`${reg.host}/plain/os:1`)).toBe(bodyDigest);
  });

  it('stops reading a 50 MB manifest at the cap and answers the generic error', async () => {
    const logged: Record<string, unknown>[] = [];
    const r = new ImageResolver({ log: { debug: (o) => logged.push(o as Record<string, unknown>) } });
    await expect(r.resolveDigest(`${reg.host}/big/os:1`)).rejects.toMatchObject({ code: 'ImageResolveFailed', message: expect.stringMatching(GENERIC) });
    // The stream was cancelled: the server wrote little more than the cap (plus socket buffers), not 50 MB.
    await new Promise((r) => setTimeout(r, 200));
    expect(bigStreamed).toBeLessThan(MAX_REGISTRY_BODY_BYTES + 8 * 1024 * 1024);
    expect(logged[0]?.reason).toMatch(/cap/);
    // A declared Content-Length over the cap is refused before any of the body is read.
    await expect(r.resolveDigest(`${reg.host}/declared/os:1`)).rejects.toMatchObject({ code: 'ImageResolveFailed' });
    expect(logged[1]?.reason).toMatch(/52428800 bytes is over/);
  });

  it('caps the token answer too', async () => {
    const logged: Record<string, unknown>[] = [];
    const r = new ImageResolver({ log: { debug: (o) => logged.push(o as Record<string, unknown>) } });
    await expect(r.resolveDigest(`${reg.host}/bigtoken/os:1`)).rejects.toMatchObject({
      code: 'ImageResolveFailed',
      message: expect.stringMatching(GENERIC),
    });
    expect(reg.hits.filter((h) => h.startsWith('GET /hugetoken'))).toHaveLength(1);
    expect(logged[0]?.reason).toMatch(/over the \d+-byte cap/);
  });

  it('does not follow redirects', async () => {
    const before = other.hits.length;
    await expect(new ImageResolver().resolveDigest(`${reg.host}/moved/os:1`)).rejects.toMatchObject({
      code: 'ImageResolveFailed',
      message: expect.stringMatching(GENERIC),
    });
    expect(other.hits.length).toBe(before);
  });

  it('never fetches a token realm on another host or port', async () => {
    const before = other.hits.length;
    await expect(new ImageResolver().resolveDigest(`${reg.host}/realm/os:1`)).rejects.toMatchObject({
      code: 'ImageResolveFailed',
      message: expect.stringMatching(GENERIC),
    });
    expect(other.hits.length).toBe(before);
  });

  it('answers the same message for a refused connection, a bad port, a 404 and a timeout', async () => {
    const r = new ImageResolver({ timeoutMs: 300 });
    const dead = `127.0.0.1:${await freePort()}`;
    const refs = [`${dead}/x/y:1`, '127.0.0.1:99999/x/y:1', '127.0.0.1:22/x/y:1', `${reg.host}/nope/os:1`, `${reg.host}/slow/os:1`];
    const messages: string[] = [];
    for (const ref of refs) {
      const err = (await r.resolveDigest(ref).catch((e) => e)) as { code: string; message: string; details: unknown };
      expect(err.code).toBe('ImageResolveFailed');
      expect(err.details).toEqual({ image: ref });
      messages.push(err.message.replace(ref, '<ref>'));
    }
    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).not.toMatch(/ECONNREFUSED|port|HTTP|404|timeout/i);
  });

  it('refuses registries outside the allow-list, even digest-pinned, and resolves listed ones', async () => {
    const r = new ImageResolver({ allowedRegistries: [reg.host] });
    expect(await r.resolveDigest(`${reg.host}/plain/os:1`)).toBe(bodyDigest);
    const before = other.hits.length;
    for (const ref of [`${other.host}/plain/os:1`, `${other.host}/plain/os@sha256:${'e'.repeat(64)}`, `LOCALHOST:${reg.host.split(':')[1]}/plain/os:1`]) {
      await expect(r.resolveDigest(ref)).rejects.toMatchObject({ code: 'RegistryNotAllowed', details: { image: ref } });
    }
    expect(other.hits.length).toBe(before);
  });

  it('parses references and knows loopback registries', () => {
    expect(parseImageRef(`reg.lab:5000/edge/os:1.2@sha256:${'d'.repeat(64)}`)).toEqual({
      registry: 'reg.lab:5000',
      repository: 'edge/os',
      tag: '1.2',
      digest: `sha256:${'d'.repeat(64)}`,
    });
    expect(isLoopbackRegistry('127.0.0.1:5000')).toBe(true);
    expect(isLoopbackRegistry('localhost')).toBe(true);
    expect(isLoopbackRegistry('reg.lab:5000')).toBe(false);
  });
});
