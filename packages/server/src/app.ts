import { buildOpenApi, EdgeplaneError } from '@edgeplane/protocol';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { agentRoutes } from './agent/agent.routes.js';
import type { ConnectionHub } from './agent/connection-hub.js';
import { apiRoutes } from './http/api.routes.js';
import { installErrorHandler } from './http/error-handler.js';
import type { Metrics } from './http/metrics.js';
import type { Store } from './store/db.js';

export const SERVER_VERSION = '0.1.0';

export interface AppDeps {
  store: Store;
  hub: ConnectionHub;
  metrics: Metrics;
  logger: Logger;
  bodyLimitBytes: number;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { store, hub, metrics } = deps;
  const app = Fastify({ loggerInstance: deps.logger, bodyLimit: deps.bodyLimitBytes, return503OnClosing: true }) as unknown as FastifyInstance;
  installErrorHandler(app);
  // The API speaks JSON only; PATCH bodies are JSON merge patches (RFC 7386).
  app.removeContentTypeParser('text/plain');
  // An empty JSON body (a bare `POST .../approve` from curl) means "no body", not malformed JSON.
  const parseJson = (_req: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
    const text = body.toString();
    if (text.trim() === '') return done(null, undefined);
    try {
      done(
        null,
        JSON.parse(text, (k, v) => (k === '__proto__' ? undefined : v)),
      );
    } catch (err) {
      done(new EdgeplaneError('MalformedJson', `malformed JSON: ${(err as Error).message}`));
    }
  };
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, parseJson);
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await store.ping();
      return { status: 'ready', store: store.dialect, agentsConnected: hub.size };
    } catch (err) {
      return reply.status(503).send({ error: { code: 'NotReady', message: `store unreachable: ${(err as Error).message}` } });
    }
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  const openapi = buildOpenApi(SERVER_VERSION);
  app.get('/api/v1/openapi.json', async () => openapi);

  await app.register(async (scope) => apiRoutes(scope, { db: store.db, hub }));
  await app.register(async (scope) => agentRoutes(scope, { db: store.db, hub, metrics, serverVersion: SERVER_VERSION }));
  return app;
}
