import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningServer, type ServerOptions, startServer } from '@edgeplane/server';
import { type Logger, pino } from 'pino';

export interface BenchServer {
  server: RunningServer;
  /** Temp dir of this run: the server's data under server/, free for the bench's own files. */
  dir: string;
  logger: Logger;
  /** Headers for admin API calls. */
  auth: Record<string, string>;
  /** Stops the server and removes the temp dir. */
  close(): Promise<void>;
}

/** A silent server on a free loopback port (SQLite, or PostgreSQL with BENCH_DATABASE_URL) for one benchmark. */
export async function startBenchServer(options: Partial<ServerOptions> = {}): Promise<BenchServer> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-'));
  const logger = pino({ level: 'silent' });
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir, 'server'),
    databaseUrl: process.env.BENCH_DATABASE_URL,
    logger,
    ...options,
  });
  return {
    server,
    dir,
    logger,
    auth: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
