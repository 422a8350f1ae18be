import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAIRING_CODE_ALPHABET } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../support/db.js';
import freePort from '../support/free-port.js';
import { startAgent } from '../support/remote-session.js';
import { type TestServer, testServer } from '../support/server.js';

/** One HTTP request with headers fetch would not send as given (Host, X-Forwarded-For). */
function raw(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const u = new URL(url);
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: { ...headers, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const randomCode = () => Array.from({ length: 8 }, () => PAIRING_CODE_ALPHABET[Math.floor(Math.random() * PAIRING_CODE_ALPHABET.length)]).join('');

/** Claims a made-up code as if from `forwardedFor` (through a proxy at 127.0.0.1); returns the status. */
async function claimFrom(t: TestServer, forwardedFor: string): Promise<number> {
  const res = await raw(t.url, 'POST', `/api/v1/pairings/${randomCode()}/claim`, { authorization: `Bearer ${t.admin}`, 'x-forwarded-for': forwardedFor }, {});
  return res.status;
}

describe.each(DIALECTS)('deployment settings on %s', (dialect) => {
  describe('rate limits and X-Forwarded-For', () => {
    it('ignores X-Forwarded-For without --trusted-proxy: every forwarded address shares the socket address bucket', async () => {
      const t = await testServer(dialect);
      try {
        for (let i = 0; i < 10; i++) expect(await claimFrom(t, '203.0.113.1')).toBe(404);
        // A client cannot buy a fresh bucket by naming another address.
        expect(await claimFrom(t, '203.0.113.2')).toBe(429);
      } finally {
        await t.close();
      }
    });

    it('with --trusted-proxy gives each forwarded client its own bucket', async () => {
      const t = await testServer(dialect, { trustedProxies: ['127.0.0.1'] });
      try {
        for (let i = 0; i < 10; i++) expect(await claimFrom(t, '203.0.113.1')).toBe(404);
        expect(await claimFrom(t, '203.0.113.1')).toBe(429);
        expect(await claimFrom(t, '203.0.113.2')).toBe(404);
        // A forged address in front of the real one does not help: the proxy appended the client's own.
        expect(await claimFrom(t, '198.51.100.9, 203.0.113.1')).toBe(429);
      } finally {
        await t.close();
      }
    });
  });

  describe('generated URLs with --public-url', () => {
    let t: TestServer;
    let host: string;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      const port = await freePort();
      t = await testServer(dialect, { port, publicUrl: 'https://edge.example.com/' });
      // The server reports its public URL; the test talks to it where it listens.
      t.url = `http://127.0.0.1:${port}`;
      ({ host, cleanup } = await startAgent(t));
    });
    afterAll(async () => {
      await cleanup?.();
      await t?.close();
    });

    it('installer user-data names the public URL, whatever Host the request carries', async () => {
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'fleet' }, spec: {} });
      const res = await raw(
        t.url,
        'POST',
        '/api/v1/registrationtokens/fleet/installer',
        { authorization: `Bearer ${t.admin}`, host: 'attacker.example:8080' },
        { rotate: true },
      );
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/^ {2}server: https:\/\/edge\.example\.com$/m);
      expect(res.text).not.toContain('attacker.example');
    });

    it('a remote session URL names the public URL', async () => {
      const res = await raw(
        t.url,
        'POST',
        `/api/v1/edgehosts/${host}/sessions`,
        { authorization: `Bearer ${t.admin}`, host: 'attacker.example:8080' },
        { kind: 'shell', reason: 'check URL' },
      );
      expect(res.status).toBe(201);
      const url = JSON.parse(res.text).status.url as string;
      expect(url).toMatch(/^wss:\/\/edge\.example\.com\/api\/v1\/remotesessions\/rs-[\w-]+\/attach$/);
    });
  });

  it('without --public-url the request host is used (unchanged), so the flag is what protects', async () => {
    const t = await testServer(dialect);
    try {
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'fleet' }, spec: {} });
      const res = await raw(
        t.url,
        'POST',
        '/api/v1/registrationtokens/fleet/installer',
        { authorization: `Bearer ${t.admin}`, host: 'attacker.example:8080' },
        { rotate: true },
      );
      expect(res.text).toMatch(/^ {2}server: http:\/\/attacker\.example:8080$/m);
    } finally {
      await t.close();
    }
  });
});

describe('console security headers', () => {
  let t: TestServer;
  let dir: string;
  const saved = process.env.EDGEPLANE_CONSOLE_DIR;
  beforeAll(async () => {
    // A console build of our own, so the test does not depend on `npm run build:console`.
    dir = mkdtempSync(join(tmpdir(), 'edgeplane-console-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module" src="/assets/app.js"></script>');
    writeFileSync(join(dir, 'assets', 'app.js'), 'console.log(1)');
    process.env.EDGEPLANE_CONSOLE_DIR = dir;
    t = await testServer('sqlite');
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.EDGEPLANE_CONSOLE_DIR;
    else process.env.EDGEPLANE_CONSOLE_DIR = saved;
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const expectSecurityHeaders = (h: Headers) => {
    const csp = h.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    expect(h.get('x-frame-options')).toBe('DENY');
    expect(h.get('x-content-type-options')).toBe('nosniff');
    expect(h.get('referrer-policy')).toBe('no-referrer');
  };

  it('index.html, deep links and assets carry CSP, no framing, nosniff and no referrer; index.html is never cached', async () => {
    for (const path of ['/', '/hosts/nuc-01']) {
      const res = await fetch(`${t.url}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('/assets/app.js');
      expectSecurityHeaders(res.headers);
      expect(res.headers.get('cache-control')).toBe('no-cache');
    }
    const asset = await fetch(`${t.url}/assets/app.js`);
    expect(asset.status).toBe(200);
    expectSecurityHeaders(asset.headers);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('API answers are left as they are', async () => {
    const res = await fetch(`${t.url}/healthz`);
    expect(res.headers.get('content-security-policy')).toBeNull();
  });
});

describe('file modes', () => {
  it('narrows a world-readable data dir to 0700 and the database files to 0600 on every start', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'edgeplane-modes-'));
    chmodSync(dataDir, 0o755);
    const mode = (f: string) => statSync(join(dataDir, f)).mode & 0o777;
    const check = () => {
      expect(mode('.')).toBe(0o700);
      for (const f of ['edgeplane.db', 'edgeplane.db-wal', 'edgeplane.db-shm', 'admin-token']) expect({ f, mode: mode(f) }).toEqual({ f, mode: 0o600 });
    };
    try {
      let t = await testServer('sqlite', { dataDir, databaseUrl: undefined });
      check();
      await t.server.close();
      // An operator (or a backup restore) widened everything; the next start narrows it again.
      chmodSync(dataDir, 0o755);
      for (const f of ['edgeplane.db', 'edgeplane.db-wal', 'edgeplane.db-shm']) {
        try {
          chmodSync(join(dataDir, f), 0o644);
        } catch {
          // -wal/-shm are removed on a clean close; the start creates them again
        }
      }
      t = await testServer('sqlite', { dataDir, databaseUrl: undefined });
      check();
      await t.server.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('default bind', () => {
  it('listens on loopback only unless --host is given', async () => {
    const t = await testServer('sqlite', { host: undefined });
    try {
      const url = new URL(t.url);
      expect(url.hostname).toBe('127.0.0.1');
      expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
      // Another interface of this machine (when it has one) gets no answer.
      const external = Object.values(networkInterfaces())
        .flat()
        .find((a) => a && a.family === 'IPv4' && !a.internal);
      if (external) await expect(fetch(`http://${external.address}:${url.port}/healthz`)).rejects.toThrow();
    } finally {
      await t.close();
    }
  });
});
