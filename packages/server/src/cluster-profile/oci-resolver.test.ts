import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackRegistry, parseImageRef, resolveImageDigest } from './oci-resolver.js';

/**
 * The token-auth and header-less paths, which Debian's docker-registry (used in the API tests)
 * does not exercise without a token service: a minimal HTTP endpoint speaking just that part of
 * the distribution API.
 */
describe('resolveImageDigest', () => {
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] });
  const bodyDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  let server: Server;
  let host: string;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
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
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    host = `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('gets an anonymous Bearer token when the registry asks for one', async () => {
    expect(await resolveImageDigest(`${host}/private/os:1`)).toBe(`sha256:${'c'.repeat(64)}`);
    expect(seen.some((s) => s.startsWith('GET /token?service=test&scope=repository%3Aprivate%2Fos%3Apull'))).toBe(true);
  });

  it('hashes the manifest when the registry sends no digest header', async () => {
    expect(await resolveImageDigest(`${host}/plain/os:1`)).toBe(bodyDigest);
  });

  it('refuses unknown tags with ImageResolveFailed', async () => {
    await expect(resolveImageDigest(`${host}/plain/os:2`)).rejects.toMatchObject({
      code: 'ImageResolveFailed',
      details: { reason: expect.stringContaining('404') },
    });
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
