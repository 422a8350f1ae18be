import type { Logger } from 'pino';

export interface ServerOptions {
  /** Listen address; default 127.0.0.1 (loopback only: give 0.0.0.0 to listen on every interface). */
  host?: string;
  /** Listen port; default 8080; 0 picks a free port. */
  port?: number;
  /** Holds the SQLite database and admin-token; default ./.edgeplane. */
  dataDir: string;
  /** postgres://... selects PostgreSQL instead of SQLite. */
  databaseUrl?: string;
  /** A host with no message for this long is marked offline; default 90. */
  offlineAfterSeconds?: number;
  /**
   * Graceful shutdown: how long /readyz answers not-ready before agent channels are handed off with
   * `reconnectElsewhere` (give the load balancer's health check time to notice); default
   * EDGEPLANE_DRAIN_DELAY_MS, else 0.
   */
  drainDelayMs?: number;
  /**
   * Secret shared by every replica on one PostgreSQL store (default EDGEPLANE_REPLICA_SECRET): a
   * remote session opened through one replica for a host whose agent is on another is proxied there.
   * Unset: such sessions answer HostOffline.
   */
  replicaSecret?: string;
  /** Where the other replicas reach this one (default EDGEPLANE_REPLICA_URL, else its listen address). */
  replicaUrl?: string;
  /**
   * How often the store is checked for /readyz, outside the query pool (a connection of its own on
   * PostgreSQL); /readyz answers from the last check at once. Default 2000 ms.
   */
  readinessCheckIntervalMs?: number;
  /** Agent channels held at once; default: the open-file limit less a reserve (agent/descriptor-budget.ts). */
  maxAgentChannels?: number;
  /** Told to agents in `welcome`; default a third of offlineAfterSeconds, at most 30. */
  heartbeatIntervalSeconds?: number;
  /** Largest accepted request body; default 1 MiB. */
  bodyLimitBytes?: number;
  /** URL printed and used in generated links (installer user-data, session URLs) instead of the Host header; default http(s)://<host>:<port>. */
  publicUrl?: string;
  /** Time to receive a whole request (headers and body) before the connection is closed; default 30000 ms. */
  requestTimeoutMs?: number;
  /** A socket with no traffic for this long while a request is in progress is closed; default 120000 ms. */
  connectionTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long; default 72000 ms. */
  keepAliveTimeoutMs?: number;
  /** Requests served on one keep-alive connection before it is closed; default 1000, 0 means no limit. */
  maxRequestsPerSocket?: number;
  /** Open connections at once (agent channels included); more are closed on accept; default 20000. */
  maxConnections?: number;
  /** Proxies (IPs or CIDRs) whose X-Forwarded-For/-Proto/-Host are believed; default none. */
  trustedProxies?: string[];
  /** PEM certificate (chain) and key files: the server speaks HTTPS and WSS only. Both or neither. */
  tlsCert?: string;
  tlsKey?: string;
  /** How often the rollout controller steps unfinished rollouts; default 1000 ms. */
  rolloutIntervalMs?: number;
  /** Registrations handled at once; more answer 429 RateLimited with Retry-After; default 64. */
  registrationConcurrency?: number;
  /** Pending (unclaimed) pairing sessions held at once; more starts answer 429 RateLimited; default 10000. */
  maxPendingPairings?: number;
  /** Pending pairing sessions opened from one source address (IPv6: one /64); default 20. */
  maxPendingPairingsPerSource?: number;
  /** Watch streams one API token may hold open at once; more answer 429 RateLimited; default 20. */
  maxWatchesPerToken?: number;
  /** Events older than this many days are deleted; default 7. */
  eventRetentionDays?: number;
  /** Events kept per involved object (host, cluster, ...), the newest; default 1000. */
  maxEventsPerObject?: number;
  /** How often old events are deleted (also once at start); default 600000 ms. */
  eventPruneIntervalMs?: number;
  /** Registries (`host[:port]`, exact) that OS images may name; others are refused with RegistryNotAllowed. Unset: any. */
  allowedRegistries?: string[];
  logger?: Logger;
  logLevel?: string;
}

export interface RunningServer {
  url: string;
  /** Every HTTP route served (method + Fastify URL pattern); the OpenAPI document describes each. */
  routes: readonly { method: string; url: string }[];
  /** Set only on the start that created the admin user (empty store). */
  adminToken?: string;
  adminTokenFile: string;
  close(): Promise<void>;
}
