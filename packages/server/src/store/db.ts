import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { postgresPing, sqlitePing } from './store-ping.js';
import { StoreScope } from './store-scope.js';

export type Db = Kysely<Database>;
/** Repositories take either the database or a transaction as their first argument. */
export type Executor = Kysely<Database> | Transaction<Database>;
export type DialectName = 'sqlite' | 'postgres';

export interface Store {
  db: Db;
  dialect: DialectName;
  /** Where the data lives, for logs: a file path or the URL without its password. */
  location: string;
  /** In-process state of this store (announced writes, audit order); carried by every transaction. */
  scope: StoreScope;
  /**
   * Whether the store can be reached and read, checked outside the query pool (store-ping.ts), so it
   * answers while every pooled connection is busy; rejects after timeoutMs. Readiness uses it.
   */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

// node-postgres returns int8 (count(*)) as string; our counters fit in a JS number.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

export function openStore(options: { dataDir: string; databaseUrl?: string; poolSize?: number; onError?: (err: Error) => void }): Store {
  const scope = new StoreScope(options.databaseUrl ? 'postgres' : 'sqlite');
  if (options.databaseUrl) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 10 });
    // An idle client losing its connection (database restart, failover) must not crash the server;
    // the pool replaces it and the next query reports any lasting problem.
    pool.on('error', (err) => options.onError?.(err));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), plugins: [scope] });
    const check = postgresPing(options.databaseUrl, options.onError);
    return {
      db,
      dialect: 'postgres',
      scope,
      location: options.databaseUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@'),
      ping: (timeoutMs) => check.ping(timeoutMs),
      close: async () => {
        await check.close();
        await db.destroy();
      },
    };
  }
  mkdirSync(options.dataDir, { recursive: true });
  const file = join(options.dataDir, 'edgeplane.db');
  ownerOnly(file);
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }), plugins: [scope] });
  const check = sqlitePing(file);
  return {
    db,
    dialect: 'sqlite',
    scope,
    location: file,
    ping: (timeoutMs) => check.ping(timeoutMs),
    close: () => db.destroy(),
  };
}

/**
 * Creates the database file readable by the owner only and narrows existing files to 0600. SQLite
 * gives the -wal and -shm files it creates the database file's mode, so they follow.
 */
function ownerOnly(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

/** True when the error is a unique-constraint violation, on either dialect. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** A savepoint inside a transaction (same SQL on SQLite and PostgreSQL): set, then release or roll back to it. */
export const savepoint = {
  set: (db: Executor, name: string) => sql`savepoint ${sql.id(name)}`.execute(db),
  release: (db: Executor, name: string) => sql`release savepoint ${sql.id(name)}`.execute(db),
  rollback: (db: Executor, name: string) => sql`rollback to savepoint ${sql.id(name)}`.execute(db),
};
