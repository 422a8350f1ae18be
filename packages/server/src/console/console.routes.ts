import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgeplaneError, type ErrorBody } from '@edgeplane/protocol';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** Fastify's default maxParamLength: a longer path parameter makes the router skip the route. */
const MAX_PARAM_LENGTH = 100;

/** Paths the console never shadows: unknown URLs under them stay JSON 404s. */
const SERVER_PREFIXES = ['/api/', '/agent/', '/healthz', '/readyz', '/metrics'];

/**
 * Headers on everything the console serves. The CSP allows only the console's own origin for scripts,
 * styles, images, fonts and API/WebSocket connections (`'self'` covers ws/wss on the same host);
 * inline styles are allowed because xterm.js themes its terminal with a <style> element; `data:`
 * images for the favicon; `blob:` for downloads the console saves. No framing (clickjacking).
 */
export const CONSOLE_SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * The built console: EDGEPLANE_CONSOLE_DIR, else the first of its known places that holds an index.html.
 * This module runs from three layouts: an installed package (a bundle chunk in dist/, the console
 * copied to dist/console), the bundle in a checkout (packages/cli/dist) and the sources under tsx
 * (packages/server/src/console); the last two use what `npm run build:console` writes.
 */
export function consoleDir(): string {
  if (process.env.EDGEPLANE_CONSOLE_DIR) return process.env.EDGEPLANE_CONSOLE_DIR;
  const here = dirname(fileURLToPath(import.meta.url));
  const places = [resolve(here, 'console'), resolve(here, '../../console/dist'), resolve(here, '../../../console/dist')];
  return places.find((dir) => existsSync(join(dir, 'index.html'))) ?? places[places.length - 1];
}

/**
 * Serves the built web console at `/`: hashed assets cached for good, index.html never cached, and
 * every other non-API GET answered with index.html so deep links (/hosts/x) work after a reload.
 */
export async function consoleRoutes(app: FastifyInstance, opts: { dir?: string } = {}): Promise<void> {
  const dir = opts.dir ?? consoleDir();
  const index = join(dir, 'index.html');
  // This plugin's own scope: the console's routes only, the API keeps its headers.
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(CONSOLE_SECURITY_HEADERS);
    return payload;
  });
  if (!existsSync(index)) {
    app.log.warn({ dir }, 'web console not built (run `npm run build:console`); serving the API only');
    app.get('/', async (_req, reply) =>
      reply.status(404).send({ error: { code: 'NotFound', message: 'the web console is not built: run `npm run build:console`' } } satisfies ErrorBody),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    // Routes are made for the files present at start; unknown paths fall through to the SPA route below.
    wildcard: false,
    index: false,
    // Otherwise send's `public, max-age=0` replaces the no-cache set for index.html below.
    cacheControl: false,
    setHeaders(res, path) {
      res.setHeader('cache-control', path.includes(`${join(dir, 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  const sendIndex = (reply: { header(k: string, v: string): unknown; sendFile(f: string): unknown }) => {
    reply.header('cache-control', 'no-cache');
    return reply.sendFile('index.html');
  };
  app.get('/', async (_req, reply) => sendIndex(reply));
  app.get('/*', async (req, reply) => {
    const path = req.url.split('?')[0];
    if (SERVER_PREFIXES.some((p) => path === p.replace(/\/$/, '') || path.startsWith(p))) {
      // The router falls back to this wildcard when a path parameter is over its length limit (names
      // are at most 63 characters): answer that as the router would without the console.
      if (path.split('/').some((segment) => segment.length > MAX_PARAM_LENGTH))
        throw new EdgeplaneError('UriTooLong', `a path segment of ${req.method} ${path.slice(0, 120)}... is over ${MAX_PARAM_LENGTH} characters`, {
          fastifyCode: 'FST_ERR_MAX_PARAM_LENGTH',
        });
      return reply.status(404).send({ error: { code: 'NotFound', message: `no route ${req.method} ${path}` } } satisfies ErrorBody);
    }
    return sendIndex(reply);
  });
}
