import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import type { Executor } from './db.js';

/** A write that code holding only a database handle announces (see watch/change-bus.ts announceWrite). */
export interface StoreNotice {
  kind: string;
  name: string;
  type: 'ADDED' | 'MODIFIED';
}

/**
 * In-process state that belongs to one opened store: who listens to its announced writes, and the
 * queue that orders its audit appends. Two servers in one process open two stores and so get two
 * scopes; nothing is shared through module state.
 *
 * It rides along as a Kysely plugin that leaves queries and results untouched, because Kysely copies
 * an instance's plugins into every transaction and derived instance: repositories and services that
 * are handed only a transaction still reach their own store's scope, without a registry keyed by
 * connection and without threading a notifier through every caller.
 */
export class StoreScope implements KyselyPlugin {
  /** PostgreSQL stores may be shared by several server replicas; SQLite ones never are (server-lock.ts). */
  constructor(readonly dialect: 'sqlite' | 'postgres') {}

  private listeners = new Set<(n: StoreNotice) => void>();
  /** Appends of this store's audit log wait here one at a time (audit/audit.service.ts). */
  auditChain: Promise<unknown> = Promise.resolve();

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }

  /** Tells this store's listeners (its server's watch hub); listeners must be cheap and never throw. */
  announce(notice: StoreNotice): void {
    for (const fn of this.listeners) fn(notice);
  }

  onAnnounce(fn: (n: StoreNotice) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** The scope of the store `db` belongs to; undefined for a Kysely instance not opened by openStore. */
export function storeScope(db: Executor): StoreScope | undefined {
  // getExecutor() is marked internal in Kysely's typings but is the one way to read the plugin list of
  // a transaction; a test (store-scope.test.ts) pins that transactions carry the scope.
  return db.getExecutor().plugins.find((p): p is StoreScope => p instanceof StoreScope);
}
