import { join } from 'node:path';
import { EdgeplaneError } from '@edgeplane/protocol';
import SQLite from 'better-sqlite3';

export interface ServerLock {
  release(): void;
}

/**
 * Keeps a second server off a SQLite data dir: SQLite is one writer and the server keeps per-process
 * state (connections, controllers) that a second process would contradict. The lock is SQLite's own
 * file lock, held by an open exclusive transaction on `<dataDir>/server.lock` for the life of the
 * server: the kernel drops it when the process dies (kill -9 included), so no stale lock file is ever
 * left to clean up, and SQLite also refuses a second connection from the same process. The database
 * itself stays unlocked, so the CLI's offline commands (`server admin-token --reset`) still open it.
 */
export function lockSqliteDataDir(dataDir: string): ServerLock {
  const file = join(dataDir, 'server.lock');
  const lock = new SQLite(file, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    // A write is what takes SQLite's exclusive lock; with locking_mode EXCLUSIVE it is kept after commit.
    lock.exec('create table if not exists server_lock (pid integer); delete from server_lock;');
    lock.prepare('insert into server_lock (pid) values (?)').run(process.pid);
  } catch (err) {
    lock.close();
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY'))
      throw new EdgeplaneError(
        'DataDirInUse',
        `another edgeplane server is running on the data dir ${dataDir} (SQLite takes one server process; run several replicas on PostgreSQL with --database-url)`,
        { dataDir },
      );
    throw err;
  }
  return { release: () => lock.close() };
}
