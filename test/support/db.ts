import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';

export const DIALECTS = ['sqlite', 'postgres'] as const;
export type Dialect = (typeof DIALECTS)[number];

export interface TestStore {
  dialect: Dialect;
  /** Fresh temp dir (SQLite lives here for the sqlite dialect). */
  dataDir: string;
  /** Set for postgres: a database created for this test alone. */
  databaseUrl?: string;
  cleanup(): Promise<void>;
}

/** A fresh, empty store location for one test on the given dialect. */
export async function testStore(dialect: Dialect): Promise<TestStore> {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeplane-test-'));
  if (dialect === 'sqlite') {
    return { dialect, dataDir, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const admin = inject('postgresUrl');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const databaseUrl = admin.replace(/\/[^/]*$/, `/${name}`);
  return {
    dialect,
    dataDir,
    databaseUrl,
    cleanup: async () => {
      rmSync(dataDir, { recursive: true, force: true });
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
