import SQLite from 'better-sqlite3';
import pg from 'pg';

/**
 * A store check that does not use the query pool: readiness must say whether the store answers, not
 * wait in the queue of the very load (a registration storm, a fleet reconnecting) it reports on.
 * `ping` rejects when the store cannot be reached or read, or does not answer within timeoutMs.
 */
export interface StorePing {
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * PostgreSQL: `select 1` over one connection of its own, opened on first use and again after it broke
 * (the pool's connections may all be taken by queued work; this one only ever runs the check). One
 * connection per server, kept open, rather than one per check: a check under load then costs a round
 * trip, not a backend start and an authentication.
 */
export function postgresPing(connectionString: string, onError: (err: Error) => void = () => {}): StorePing {
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let closed = false;
  const drop = (c: pg.Client) => {
    if (client === c) client = undefined;
    void c.end().catch(() => {});
  };
  const connected = (timeoutMs: number): Promise<pg.Client> => {
    if (client) return Promise.resolve(client);
    connecting ??= (async () => {
      const c = new pg.Client({ connectionString, connectionTimeoutMillis: timeoutMs, application_name: 'edgeplane-readiness' });
      // The connection lost while idle (database restart, terminated backend): the next check reconnects.
      c.on('error', (err) => {
        onError(err);
        drop(c);
      });
      try {
        await c.connect();
      } catch (err) {
        drop(c);
        throw err;
      }
      client = c;
      return c;
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };
  return {
    async ping(timeoutMs) {
      // After close() a late check must not open a connection nobody ends.
      if (closed) throw new Error('the store is closed');
      const c = await connected(timeoutMs);
      try {
        // query_timeout: node-postgres gives up waiting on its side (the server may never answer).
        await c.query({ text: 'select 1', query_timeout: timeoutMs } as pg.QueryConfig);
      } catch (err) {
        // A timed-out query leaves the connection mid-protocol: start over with a new one.
        drop(c);
        throw err;
      }
    },
    async close() {
      closed = true;
      const c = client ?? (await connecting?.catch(() => undefined));
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}

/**
 * SQLite: a fresh read-only connection to the database file reads its schema. Not the server's own
 * connection, which Kysely hands to one transaction at a time (a queue like a pool's); a new
 * connection also notices a database file that is gone from its path or is no longer a database,
 * while the server's open one would keep writing to the old file. better-sqlite3 is synchronous, so
 * timeoutMs bounds only waiting for a lock (WAL readers do not wait for writers).
 */
export function sqlitePing(file: string): StorePing {
  return {
    async ping(timeoutMs) {
      const probe = new SQLite(file, { readonly: true, fileMustExist: true, timeout: timeoutMs });
      try {
        probe.prepare('select count(*) from sqlite_master').get();
      } finally {
        probe.close();
      }
    },
    async close() {},
  };
}
