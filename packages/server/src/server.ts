import { chmodSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { ConnectionHub } from './agent/connection-hub.js';
import { descriptorBudget } from './agent/descriptor-budget.js';
import { appRoutes, buildApp } from './app.js';
import { bootstrap } from './bootstrap.js';
import { ClusterController } from './cluster/cluster.controller.js';
import { loadSecretBox } from './cluster/secret-box.js';
import { VirtController } from './cluster/virtualized/virt.controller.js';
import { ControllerLease } from './controller/controller-lease.js';
import { openFencedDb } from './controller/fenced-db.js';
import { EventRetention } from './event/event-retention.js';
import { createMetrics } from './http/metrics.js';
import { resolveTransport } from './http/transport.js';
import type { RunningServer, ServerOptions } from './options.js';
import { endOrphanedSessions } from './remote-session/remote-session.service.js';
import { RolloutController } from './rollout/rollout.controller.js';
import { openStore } from './store/db.js';
import { migrateToLatest } from './store/migrations.js';
import { lockSqliteDataDir } from './store/server-lock.js';
import { joinReplicas } from './watch/replica-bus.js';

/** What a request log line shows; one-time secrets in query strings (attach tickets, tokens) are masked. */
export function serializeRequest(req: { method?: string; url?: string; headers?: Record<string, unknown>; socket?: { remoteAddress?: string } }) {
  return {
    method: req.method,
    url: req.url?.replace(/([?&](?:ticket|token|access_token)=)[^&]*/gi, '$1***'),
    host: req.headers?.host,
    remoteAddress: req.socket?.remoteAddress,
  };
}

/** EDGEPLANE_DRAIN_DELAY_MS: the not-ready time before agents are handed off at shutdown (ServerOptions.drainDelayMs). */
function drainDelayFromEnv(): number {
  const v = Number(process.env.EDGEPLANE_DRAIN_DELAY_MS ?? 0);
  return Number.isFinite(v) && v > 0 ? Math.min(v, 120_000) : 0;
}

/** Opens the store, migrates, bootstraps on first start, and listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // The data dir holds the database, the admin token and the secret key: owner only, even when it
  // already existed with wider permissions (mkdir's mode applies only to a directory it creates).
  chmodSync(dataDir, 0o700);
  const transport = resolveTransport(options);
  const logger = options.logger ?? pino({ level: options.logLevel ?? 'info', serializers: { req: serializeRequest } });
  // SQLite: one server per data dir (refused with DataDirInUse before the store is touched).
  const lock = options.databaseUrl ? undefined : lockSqliteDataDir(dataDir);
  const store = openStore({ dataDir, databaseUrl: options.databaseUrl, onError: (err) => logger.warn({ err: err.message }, 'idle database connection lost') });
  // What is running so far, stopped in reverse order when a later step fails (a port in use): the
  // hub's timers, the replicas' LISTEN connection and the app would otherwise outlive the failure.
  const started: (() => unknown)[] = [];
  try {
    await migrateToLatest(store.db);
    const orphaned = await endOrphanedSessions(store.db, store.dialect === 'postgres');
    if (orphaned) logger.info({ sessions: orphaned }, 'ended remote sessions left open by a previous run');
    const adminTokenFile = join(dataDir, 'admin-token');
    const adminToken = await bootstrap(store.db, adminTokenFile);
    const offlineAfterSeconds = options.offlineAfterSeconds ?? 90;
    const heartbeatIntervalSeconds = options.heartbeatIntervalSeconds ?? Math.min(30, offlineAfterSeconds / 3);
    const metrics = createMetrics();
    // Open files: raise the soft limit to the hard one where possible, and keep agent channels below it.
    const budget = descriptorBudget();
    if (budget.notRaised) logger.warn({ reason: budget.notRaised }, 'open-file limit not raised');
    const maxChannels = options.maxAgentChannels ?? budget.maxAgentChannels;
    metrics.openFileLimit.set(budget.limit);
    metrics.agentChannelLimit.set(maxChannels);
    logger.info({ openFileLimit: budget.limit, reserve: budget.reserve, maxAgentChannels: maxChannels }, 'descriptor budget');
    const hub = new ConnectionHub(store.db, logger.child({ component: 'hub' }), metrics, {
      offlineAfterSeconds,
      heartbeatIntervalSeconds,
      flushIntervalMs: Math.min(5000, (offlineAfterSeconds * 1000) / 3),
      sharedStore: store.dialect === 'postgres',
      maxChannels,
    });
    await hub.start();
    started.push(() => hub.stop());
    // PostgreSQL: other replicas may share the store; change notices travel over LISTEN/NOTIFY.
    const replicas = options.databaseUrl ? await joinReplicas(store, options.databaseUrl, hub, logger.child({ component: 'replicas' })) : undefined;
    started.push(() => replicas?.stop());
    const eventRetention = new EventRetention(store.db, logger.child({ component: 'events' }), {
      maxAgeSeconds: options.eventRetentionDays === undefined ? undefined : options.eventRetentionDays * 86_400,
      maxPerObject: options.maxEventsPerObject,
      intervalMs: options.eventPruneIntervalMs,
    });
    // PostgreSQL: the controllers run on the one replica holding the lease (its liveness is the same
    // as the replica lease of its hosts: offline-after), and their transactional writes are fenced by
    // it. SQLite: one process, they simply run on the store.
    const lease = options.databaseUrl
      ? new ControllerLease(store.db, hub.replicaId, offlineAfterSeconds * 1000, logger.child({ component: 'controller-lease' }))
      : undefined;
    const controllerDb =
      options.databaseUrl && lease
        ? openFencedDb(options.databaseUrl, store.scope, {
            name: lease.name,
            holder: lease.holderId,
            epoch: () => (lease.held ? lease.currentEpoch : undefined),
          })
        : store.db;
    if (controllerDb !== store.db) started.push(() => controllerDb.destroy());
    const clusters = new ClusterController(controllerDb, hub, loadSecretBox(dataDir), logger.child({ component: 'clusters' }));
    // What VMs' seeds will name as the server: known once the server listens (below).
    let vmServerUrl: string | undefined;
    const app = await buildApp({
      vmServerUrl: () => vmServerUrl,
      store,
      hub,
      metrics,
      logger,
      bodyLimitBytes: options.bodyLimitBytes ?? 1024 * 1024,
      dataDir,
      clusters,
      registrationConcurrency: options.registrationConcurrency,
      pairingCaps: { maxPending: options.maxPendingPairings, maxPendingPerSource: options.maxPendingPairingsPerSource },
      transport,
      publicUrl: options.publicUrl,
      allowedRegistries: options.allowedRegistries,
      maxWatchesPerToken: options.maxWatchesPerToken,
      onWatchHub: (watch) => replicas?.attachWatch(watch),
      replicaSecret: options.replicaSecret ?? process.env.EDGEPLANE_REPLICA_SECRET,
      readinessCheckIntervalMs: options.readinessCheckIntervalMs,
    });
    started.push(() => app.close());
    const host = options.host ?? '127.0.0.1';
    await app.listen({ host, port: options.port ?? 8080 });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : options.port;
    const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    const url = options.publicUrl ?? `${transport.tls ? 'https' : 'http'}://${shown}:${port}`;
    vmServerUrl = url;
    // Where the other replicas proxy remote sessions to: this process's own address, not the load balancer's.
    const listenUrl = `${transport.tls ? 'https' : 'http'}://${host === '0.0.0.0' || host === '::' ? hostname() : shown}:${port}`;
    await hub.advertise(options.replicaUrl ?? process.env.EDGEPLANE_REPLICA_URL ?? listenUrl);
    logger.info({ url, store: store.dialect, location: store.location }, 'edgeplane server listening');
    const virt = new VirtController(controllerDb, hub, clusters.secrets, logger.child({ component: 'virt' }), { serverUrl: () => url });
    const rollouts = new RolloutController(controllerDb, logger.child({ component: 'rollouts' }) as never, {
      intervalMs: options.rolloutIntervalMs,
      onClustersChanged: () => clusters.nudge(),
    });
    const controllers = {
      start() {
        clusters.start();
        virt.start();
        rollouts.start();
        eventRetention.start();
      },
      async stop() {
        await rollouts.stop();
        await virt.stop();
        await clusters.stop();
        await eventRetention.stop();
      },
    };
    started.push(() => (lease ? lease.stop() : controllers.stop()));
    if (lease) await lease.start(controllers);
    else controllers.start();
    // PostgreSQL: sessions served by a replica that died (its lease ran out) are ended by the others.
    const sessionSweep = options.databaseUrl
      ? setInterval(
          () =>
            void endOrphanedSessions(store.db, true, 'replica-lost').then(
              (n) => n && logger.info({ sessions: n }, 'ended remote sessions of a replica whose lease ran out'),
              (err) => logger.warn({ err }, 'ending remote sessions of dead replicas failed'),
            ),
          (offlineAfterSeconds * 1000) / 3,
        ).unref()
      : undefined;
    const drainDelayMs = options.drainDelayMs ?? drainDelayFromEnv();
    return {
      url,
      routes: appRoutes(app),
      adminToken,
      adminTokenFile,
      async close() {
        // Graceful shutdown: /readyz says not-ready first, so the load balancer stops sending agents
        // and requests here; after drainDelayMs the agents are handed off (reconnectElsewhere).
        hub.drain();
        if (sessionSweep) clearInterval(sessionSweep);
        if (drainDelayMs) await new Promise((r) => setTimeout(r, drainDelayMs));
        await hub.stop();
        if (lease) await lease.stop();
        else await controllers.stop();
        if (controllerDb !== store.db) await controllerDb.destroy();
        await replicas?.stop();
        await app.close();
        await store.close();
        lock?.release();
      },
    };
  } catch (err) {
    for (const stop of started.reverse())
      await Promise.resolve()
        .then(stop)
        .catch(() => {});
    await store.close().catch(() => {});
    lock?.release();
    throw err;
  }
}
