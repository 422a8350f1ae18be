/**
 * TEST SUPPORT. A tiny HTTP server speaking the read side of the OCI distribution API from an OCI
 * layout, with knobs a real registry does not have: require bearer tokens, tamper a blob, cut a
 * blob after some bytes. Used to test the client's auth, verification and resume paths.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface LayoutServerOptions {
  layoutDir: string;
  /** Require `Authorization: Bearer <token>`; the token is handed out at /token. */
  token?: string;
  /** Serve different bytes (same length) for this blob digest. */
  tamper?: string;
  /** Close the connection after this many bytes of this blob's first full (non-Range) request. */
  cut?: { digest: string; afterBytes: number };
}

export interface LayoutServer {
  host: string;
  requests: Array<{ path: string; range?: string; authorization?: string }>;
  close(): Promise<void>;
}

export async function startLayoutServer(options: LayoutServerOptions): Promise<LayoutServer> {
  const requests: LayoutServer['requests'] = [];
  let cutDone = false;
  const server = createServer(async (req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ path: url.pathname, range: req.headers.range, authorization: req.headers.authorization });
    if (url.pathname === '/token') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: options.token }));
      return;
    }
    if (options.token && req.headers.authorization !== `Bearer ${options.token}`) {
      const realm = `http://${req.headers.host}/token`;
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="test-registry",scope="repository:edge/os:pull"` }).end();
      return;
    }
    const m = /^\/v2\/.+\/(manifests|blobs)\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
    if (!m) return void res.writeHead(404).end();
    let bytes: Buffer;
    try {
      bytes = await readFile(join(options.layoutDir, 'blobs', 'sha256', m[2].slice(7)));
    } catch {
      return void res.writeHead(404).end();
    }
    if (m[2] === options.tamper) {
      bytes = Buffer.from(bytes);
      bytes[bytes.length - 1] ^= 0xff;
    }
    if (m[1] === 'manifests') {
      return void res.writeHead(200, { 'content-type': JSON.parse(bytes.toString()).mediaType }).end(bytes);
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      res.writeHead(206, { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`, 'content-length': bytes.length - start });
      return void res.end(bytes.subarray(start));
    }
    if (options.cut?.digest === m[2] && !cutDone) {
      cutDone = true;
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, options.cut.afterBytes), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
