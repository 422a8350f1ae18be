import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresDialect,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import pg from 'pg';
import type { Db } from '../store/db.js';
import type { Database } from '../store/schema.js';
import type { StoreScope } from '../store/store-scope.js';

/** What a fenced write checks: the lease it must still hold. */
export interface Fence {
  name: string;
  holder: string;
  /** The epoch this replica holds, or undefined when it holds none. */
  epoch(): number | undefined;
}

const WRITES = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode']);

/** Thrown into a controller's transaction when its replica no longer holds the lease: the transaction rolls back. */
export class LeaseLostError extends Error {
  constructor(epoch: number | undefined) {
    super(`controller lease not held${epoch === undefined ? '' : ` at epoch ${epoch}`}: write refused`);
    this.name = 'LeaseLostError';
  }
}

/**
 * A connection that, inside a transaction, checks the lease before the transaction's first write:
 * `select ... for share` on the lease row at this replica's epoch, unexpired. The share lock is held
 * until the transaction ends, so another replica taking the lease (an update of that row) waits for
 * the transaction and a holder that lost the lease cannot commit a step after the new holder began.
 * Writes outside transactions are not fenced (spec pushes fill in join secrets from any replica).
 */
class FencedConnection implements DatabaseConnection {
  inTransaction = false;
  fenced = false;
  constructor(
    readonly inner: DatabaseConnection,
    private readonly fence: Fence,
  ) {}

  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    if (this.inTransaction && !this.fenced && WRITES.has(q.query.kind)) {
      const epoch = this.fence.epoch();
      if (epoch === undefined) throw new LeaseLostError(undefined);
      const held = await this.inner.executeQuery(
        CompiledQuery.raw('select 1 from controller_leases where name = $1 and holder = $2 and epoch = $3 and expires_at > $4 for share', [
          this.fence.name,
          this.fence.holder,
          epoch,
          new Date().toISOString(),
        ]),
      );
      if (held.rows.length === 0) throw new LeaseLostError(epoch);
      this.fenced = true;
    }
    return this.inner.executeQuery<R>(q);
  }

  streamQuery<R>(q: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(q, chunkSize);
  }
}

/** Wraps a driver so its connections are FencedConnections; the inner driver always sees its own connection. */
class FencedDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly fence: Fence,
  ) {}
  init() {
    return this.inner.init();
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    return new FencedConnection(await this.inner.acquireConnection(), this.fence);
  }
  async beginTransaction(c: DatabaseConnection, settings: TransactionSettings) {
    const f = c as FencedConnection;
    await this.inner.beginTransaction(f.inner, settings);
    f.inTransaction = true;
    f.fenced = false;
  }
  async commitTransaction(c: DatabaseConnection) {
    const f = c as FencedConnection;
    f.inTransaction = false;
    await this.inner.commitTransaction(f.inner);
  }
  async rollbackTransaction(c: DatabaseConnection) {
    const f = c as FencedConnection;
    f.inTransaction = false;
    await this.inner.rollbackTransaction(f.inner);
  }
  async savepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    await this.inner.savepoint?.((c as FencedConnection).inner, name, compile);
  }
  async rollbackToSavepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    await this.inner.rollbackToSavepoint?.((c as FencedConnection).inner, name, compile);
  }
  async releaseSavepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    await this.inner.releaseSavepoint?.((c as FencedConnection).inner, name, compile);
  }
  releaseConnection(c: DatabaseConnection) {
    return this.inner.releaseConnection((c as FencedConnection).inner);
  }
  destroy() {
    return this.inner.destroy();
  }
}

class FencedPostgresDialect extends PostgresDialect {
  constructor(
    config: ConstructorParameters<typeof PostgresDialect>[0],
    private readonly fence: Fence,
  ) {
    super(config);
  }
  override createDriver(): Driver {
    return new FencedDriver(super.createDriver(), this.fence);
  }
}

/**
 * The controllers' handle on a shared PostgreSQL store: its own small pool, the store's scope (so
 * announced writes still reach this server's watchers), and the lease fence on transactional writes.
 */
export function openFencedDb(databaseUrl: string, scope: StoreScope, fence: Fence): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  pool.on('error', () => {});
  return new Kysely<Database>({ dialect: new FencedPostgresDialect({ pool }, fence), plugins: [scope] });
}
