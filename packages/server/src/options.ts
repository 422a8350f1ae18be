import type { Logger } from 'pino';

export interface ServerOptions {
  /** Listen address; default 0.0.0.0. */
  host?: string;
  /** Listen port; default 8080; 0 picks a free port. */
  port?: number;
  /** Holds the SQLite database and admin-token; default ./.edgeplane. */
  dataDir: string;
  /** postgres://... selects PostgreSQL instead of SQLite. */
  databaseUrl?: string;
  /** A host with no message for this long is marked offline; default 90. */
  offlineAfterSeconds?: number;
  /** Told to agents in `welcome`; default a third of offlineAfterSeconds, at most 30. */
  heartbeatIntervalSeconds?: number;
  /** Largest accepted request body; default 1 MiB. */
  bodyLimitBytes?: number;
  /** URL printed and used in links; default http://<host>:<port>. */
  publicUrl?: string;
  /** How often the rollout controller steps unfinished rollouts; default 1000 ms. */
  rolloutIntervalMs?: number;
  /** Registrations handled at once; more answer 429 RateLimited with Retry-After; default 64. */
  registrationConcurrency?: number;
  /** Registries (`host[:port]`, exact) that OS images may name; others are refused with RegistryNotAllowed. Unset: any. */
  allowedRegistries?: string[];
  logger?: Logger;
  logLevel?: string;
}

export interface RunningServer {
  url: string;
  /** Set only on the start that created the admin user (empty store). */
  adminToken?: string;
  adminTokenFile: string;
  close(): Promise<void>;
}
