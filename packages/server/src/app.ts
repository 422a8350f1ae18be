import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOpenApi } from '@edgeplane/protocol';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { agentRoutes } from './agent/agent.routes.js';
import type { ConnectionHub } from './agent/connection-hub.js';
import { auditRoutes } from './audit/audit.routes.js';
import { installAuditHooks } from './audit/audit-hooks.js';
import type { ClusterController } from './cluster/cluster.controller.js';
import { clusterRoutes } from './cluster/cluster.routes.js';
import { hostRemovalRoutes } from './cluster/host-removal.routes.js';
import { hostResetRoutes } from './cluster/host-reset.routes.js';
import { upgradeRoutes } from './cluster/upgrade/upgrade.routes.js';
import { vmRoutes } from './cluster/virtualized/vm.routes.js';
import { clusterProfileRoutes, prefetchProfileDigests } from './cluster-profile/cluster-profile.routes.js';
import { ImageResolver } from './cluster-profile/oci-resolver.js';
import { consoleRoutes } from './console/console.routes.js';
import { summaryRoutes } from './console/summary.routes.js';
import { fleetRoutes } from './fleet/fleet.routes.js';
import { apiRoutes, SERVICES } from './http/api.routes.js';
import { frameworkErrors, installErrorHandler, websocketErrorHandler } from './http/error-handler.js';
import { installInputGuard, parseJsonBody } from './http/input-guard.js';
import type { Metrics } from './http/metrics.js';
import { parseQueryString } from './http/query-string.js';
import type { Transport } from './http/transport.js';
import { installProtocolVersionCheck, versionRoutes } from './http/version.routes.js';
import { installerRoutes } from './installer/installer.routes.js';
import { pairingApiRoutes } from './pairing/pairing.routes.js';
import { type PairingCaps, PairingSessions } from './pairing/pairing-sessions.js';
import { remoteSessionRoutes } from './remote-session/remote-session.routes.js';
import { SessionProxy } from './remote-session/replica-proxy.js';
import { SessionBroker } from './remote-session/session-broker.js';
import type { Store } from './store/db.js';
import { StoreHealth } from './store/store-health.js';
import { whoamiRoutes } from './user/whoami.routes.js';
import { selectWatchProtocol, watchRoutes } from './watch/watch.routes.js';
import { WatchHub } from './watch/watch-hub.js';

export const SERVER_VERSION = '0.1.0';

/** A store check (`select 1` on an idle connection of its own) not answered within this long counts as a failure. */
const STORE_CHECK_TIMEOUT_MS = 5000;

export interface AppDeps {
  store: Store;
  hub: ConnectionHub;
  metrics: Metrics;
  logger: Logger;
  bodyLimitBytes: number;
  /** Server data dir: remote-session recordings go to <dataDir>/recordings. */
  dataDir?: string;
  /** Cluster controller (secret box + nudge); cluster routes and kubeconfig capture need it. */
  clusters?: ClusterController;
  /** Registrations handled at once before 429 RateLimited; default 64. */
  registrationConcurrency?: number;
  /** Caps on pending pairing sessions (see PairingSessions); defaults when absent. */
  pairingCaps?: Partial<PairingCaps>;
  /** Watch streams one API token may hold open at once; default 20. */
  maxWatchesPerToken?: number;
  /** Timeouts, connection cap, trusted proxies and TLS (resolveTransport); Fastify's defaults when absent. */
  transport?: Transport;
  /** The server's public URL: generated links use it instead of the request's Host header. */
  publicUrl?: string;
  /** The server URL VMs' seeds carry; known once the server listens (server.ts). */
  vmServerUrl?: () => string | undefined;
  /** Registries (`host[:port]`) OS images may come from; unset: any. */
  allowedRegistries?: string[];
  /** Told this server's watch hub once built (other replicas' change notices go to it). */
  onWatchHub?: (watch: WatchHub) => void;
  /** Pause between background store checks, whose last outcome /readyz reports; default 2000 ms. */
  readinessCheckIntervalMs?: number;
  /** Shared by the replicas of one PostgreSQL store: remote sessions are proxied to the replica holding the agent. */
  replicaSecret?: string;
}

/** One HTTP route as Fastify registered it (`:name` parameters, methods upper case). */
export interface RouteEntry {
  method: string;
  url: string;
}
const ROUTES = new WeakMap<FastifyInstance, RouteEntry[]>();
/** Every route an app built by buildApp serves: what the OpenAPI document must describe. */
export function appRoutes(app: FastifyInstance): readonly RouteEntry[] {
  return ROUTES.get(app) ?? [];
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { store, hub, metrics } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: deps.bodyLimitBytes,
    return503OnClosing: true,
    // Routing errors (`%ff` in a path) answer in our error format too.
    frameworkErrors,
    // A repeated query key keeps its first value: handlers read query values as strings.
    routerOptions: { querystringParser: parseQueryString },
    ...deps.transport?.fastify,
  }) as unknown as FastifyInstance;
  const routes: RouteEntry[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });
  // Past the cap Node closes new sockets on accept, so a flood cannot exhaust the file descriptors.
  if (deps.transport) app.server.maxConnections = deps.transport.maxConnections;
  installErrorHandler(app);
  // Before any route plugin: control characters in URLs, queries and bodies are a 400 everywhere.
  installInputGuard(app);
  // The API speaks JSON only; PATCH bodies are JSON merge patches (RFC 7386).
  app.removeContentTypeParser('text/plain');
  const parseJson = (_req: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
    try {
      done(null, parseJsonBody(body.toString()));
    } catch (err) {
      done(err as Error);
    }
  };
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, parseJson);
  // Browsers send their API token as a watch subprotocol; selectWatchProtocol never echoes it back.
  await app.register(websocket, { options: { maxPayload: 1024 * 1024, handleProtocols: selectWatchProtocol }, errorHandler: websocketErrorHandler });
  // Before any route: a CLI or agent of another protocol major is refused with both versions named. After
  // the WebSocket plugin, whose own onRequest hook marks upgrades so that a refused one's socket is closed.
  installProtocolVersionCheck(app);

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  // Readiness comes from a background store check outside the query pool (store-health.ts and
  // store-ping.ts): /readyz answers at once from its last outcome instead of queueing behind the
  // registrations and agent hellos that fill the pool under load, which made load balancers take busy
  // but healthy replicas out of rotation.
  let storeWasOk = true;
  const storeHealth = new StoreHealth((timeoutMs) => store.ping(timeoutMs), {
    // At least 50 ms: a zero or negative interval would turn the check into a busy loop on the store.
    intervalMs: Math.max(50, deps.readinessCheckIntervalMs ?? 2000),
    timeoutMs: STORE_CHECK_TIMEOUT_MS,
    onCheck: (check) => {
      metrics.storeCheckDuration.set(check.latencyMs / 1000);
      if (check.ok) metrics.storeCheckLastSuccess.set(check.at / 1000);
      else metrics.storeCheckFailures.inc();
      // One log line per change, not one per check while the store stays away.
      if (!check.ok && storeWasOk) deps.logger.warn({ err: check.error }, 'store check failed: /readyz answers not ready');
      if (check.ok && !storeWasOk) deps.logger.info({ latencyMs: check.latencyMs }, 'store check succeeded again: /readyz answers ready');
      storeWasOk = check.ok;
    },
  });
  await storeHealth.start();
  app.addHook('onClose', async () => storeHealth.stop());
  app.get('/readyz', async (_req, reply) => {
    // Draining for shutdown: the load balancer stops sending agents and requests here first.
    if (hub.draining) return reply.status(503).send({ error: { code: 'NotReady', message: 'draining: this server is shutting down' } });
    const r = storeHealth.readiness();
    if (!r.ready) {
      const details = { storeCheck: r.lastCheck ?? null, lastSuccessAgeMs: r.lastSuccessAgeMs ?? null };
      return reply.status(503).send({ error: { code: 'NotReady', message: r.reason, details } });
    }
    return {
      status: 'ready',
      store: store.dialect,
      storeCheck: { ageMs: r.ageMs, latencyMs: r.latencyMs },
      agentsConnected: hub.size,
      agentChannelLimit: hub.options.maxChannels ?? null,
    };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  const openapi = buildOpenApi(SERVER_VERSION);
  app.get('/api/v1/openapi.json', async () => openapi);
  await app.register(async (scope) => versionRoutes(scope, { serverVersion: SERVER_VERSION }));

  // Remote sessions and the audit log (see docs/architecture.md "Remote sessions").
  installAuditHooks(app, store.db);
  const recordingsDir = join(deps.dataDir ?? join(tmpdir(), 'edgeplane'), 'recordings');
  const sessions = new SessionBroker({ db: store.db, hub, metrics, log: deps.logger.child({ component: 'sessions' }) as never, recordingsDir });
  app.addHook('preClose', async () => sessions.stop());
  const proxy = new SessionProxy({
    db: store.db,
    replicaId: hub.replicaId,
    secret: deps.replicaSecret,
    shared: store.dialect === 'postgres',
    log: deps.logger.child({ component: 'session-proxy' }) as never,
  });
  await app.register(async (scope) => remoteSessionRoutes(scope, { db: store.db, broker: sessions, proxy, recordingsDir, publicUrl: deps.publicUrl }));
  await app.register(async (scope) => auditRoutes(scope, { db: store.db }));
  // Profile writes resolve their OS image digest before the API opens a store transaction.
  const images = new ImageResolver({ allowedRegistries: deps.allowedRegistries, log: deps.logger.child({ component: 'images' }) });
  app.addHook('preHandler', prefetchProfileDigests(store.db, images));
  await app.register(async (scope) => apiRoutes(scope, { db: store.db, hub, images, vmServerUrl: deps.vmServerUrl }));
  await app.register(async (scope) => clusterProfileRoutes(scope, { db: store.db }));
  if (deps.clusters) {
    const clusters = deps.clusters;
    await app.register(async (scope) => clusterRoutes(scope, { db: store.db, secrets: clusters.secrets }));
    await app.register(async (scope) => upgradeRoutes(scope, { db: store.db, controller: clusters }));
    await app.register(async (scope) => hostResetRoutes(scope, { db: store.db, hub }));
    await app.register(async (scope) => hostRemovalRoutes(scope, { db: store.db, hub }));
  }
  await app.register(async (scope) => vmRoutes(scope, { db: store.db }));
  // One pairing state per server: the claim route wakes the agent route's long-polls.
  const pairings = new PairingSessions(store.db, deps.logger.child({ component: 'pairings' }), deps.pairingCaps);
  app.decorate('pairings', pairings);
  pairings.start();
  app.addHook('preClose', async () => pairings.stop());
  await app.register(async (scope) => pairingApiRoutes(scope, { db: store.db }));
  await app.register(async (scope) => installerRoutes(scope, { db: store.db, publicUrl: deps.publicUrl }));
  await app.register(async (scope) =>
    agentRoutes(scope, {
      db: store.db,
      hub,
      metrics,
      serverVersion: SERVER_VERSION,
      sessions,
      clusters: deps.clusters,
      registrationConcurrency: deps.registrationConcurrency,
    }),
  );
  // What the web console needs besides the resource API: who am I, live changes, and its own files at `/`.
  const watch = new WatchHub(store.db, hub.changes, () => SERVICES, deps.logger.child({ component: 'watch' }));
  watch.start();
  deps.onWatchHub?.(watch);
  app.addHook('onClose', async () => watch.stop());
  await app.register(async (scope) => whoamiRoutes(scope, { db: store.db, services: () => SERVICES }));
  await app.register(async (scope) => watchRoutes(scope, { db: store.db, watch, services: () => SERVICES, maxWatchesPerToken: deps.maxWatchesPerToken }));
  await app.register(async (scope) => summaryRoutes(scope, { db: store.db }));
  await app.register(async (scope) => fleetRoutes(scope, { db: store.db }));
  await app.register(async (scope) => consoleRoutes(scope));
  return app;
}
