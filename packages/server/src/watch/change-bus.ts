import type { WatchEventType } from '@edgeplane/protocol';
import type { Executor } from '../store/db.js';
import { type StoreNotice, storeScope } from '../store/store-scope.js';

export type { StoreNotice };

/** One committed change to one object, as watchers receive it. */
export interface Change {
  type: WatchEventType;
  kind: string;
  object: { kind: string; metadata: { name: string; resourceVersion: string } };
}

/**
 * Where a published change comes from: `local` (this server committed it: other replicas are told),
 * or `store` (read back from the store after a notice: another replica or an announced write already
 * told them).
 */
export type ChangeSource = 'local' | 'store';
export type ChangeListener = (change: Change, source: ChangeSource) => void;

/**
 * In-process fan-out of committed changes for one server. Publishers hand over full objects, so a
 * change is serialized once per watcher at most and never re-read per watcher. Listeners must be
 * cheap and never throw (the watch subscribers only enqueue).
 */
export class ChangeBus {
  private listeners = new Set<ChangeListener>();

  subscribe(fn: ChangeListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Whether anyone listens: publishers skip reading objects back when nobody would see them. */
  get size(): number {
    return this.listeners.size;
  }

  publish(change: Change, source: ChangeSource = 'local'): void {
    for (const fn of this.listeners) fn(change, source);
  }
}

/** Changes recorded while a request runs; published only after its transaction committed. */
export class ChangeBatch {
  readonly changes: Change[] = [];
  record(change: Change): void {
    this.changes.push(change);
  }
  publishTo(bus: ChangeBus): void {
    for (const c of this.changes) bus.publish(c);
    this.changes.length = 0;
  }
}

/**
 * Writes that happen where no server object is at hand (agent events recorded inside the agent
 * channel and registration, controller status writes) announce only kind and name, to the scope of
 * the store they wrote to. That store's server reads the named objects back in batches (watch-hub.ts).
 */
export function announceWrite(db: Executor, notice: StoreNotice): void {
  storeScope(db)?.announce(notice);
}
