import { EdgeplaneError, type Role, type WatchMessage } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { ResourceRow } from '../resource/resource.repository.js';
import type { ResourceService } from '../resource/resource.service.js';
import type { Db } from '../store/db.js';
import { storeScope } from '../store/store-scope.js';
import { credentialOf } from '../user/api-token.service.js';
import type { Change, ChangeBus, StoreNotice } from './change-bus.js';
import { WATCH_CLOSE_UNAUTHORIZED, type WatchSubscriber } from './subscriber.js';

/** How long announced writes are collected before they are read back in one query per kind. */
const ANNOUNCE_BATCH_MS = 50;

export interface WatchHubOptions {
  /**
   * How often every watch's API token is checked against the store again. Changes made through this
   * server's API close the affected watches at once; this catches the rest (another replica, an
   * expired token, `edgeplane server admin-token --reset`). Default 60 s.
   */
  credentialRecheckMs?: number;
}

const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Fans the server's committed changes out to its watch subscribers. */
export class WatchHub {
  private subs = new Set<WatchSubscriber>();
  private pending = new Map<string, Map<string, StoreNotice['type']>>();
  private timer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void)[] = [];
  /** Set while anyone watches: publishers skip reading objects back when the bus has no listener. */
  private offBus: (() => void) | undefined;

  constructor(
    private db: Db,
    private bus: ChangeBus,
    private services: () => ResourceService[],
    private log: Logger,
    private options: WatchHubOptions = {},
  ) {}

  start(): void {
    const scope = storeScope(this.db);
    if (scope) this.unsubscribe.push(scope.onAnnounce((n) => this.announced(n)));
    this.recheckTimer = setInterval(() => void this.recheckAll(), this.options.credentialRecheckMs ?? 60_000).unref();
  }

  stop(): void {
    if (this.recheckTimer) clearInterval(this.recheckTimer);
    for (const u of this.unsubscribe) u();
    this.offBus?.();
    this.offBus = undefined;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.subs) s.close();
    this.subs.clear();
  }

  add(sub: WatchSubscriber): () => void {
    this.subs.add(sub);
    this.offBus ??= this.bus.subscribe((c) => {
      // Credentials first: a watch whose token or user this change revokes gets not even this change.
      if (c.kind === 'User' || c.kind === 'ApiToken') this.credentialChanged(c);
      // Serialized once for every watcher of the kind (the only per-watcher filter), not once per watcher.
      let data: string | undefined;
      for (const s of this.subs) {
        if (!s.wants(c.kind)) continue;
        data ??= JSON.stringify(c satisfies WatchMessage);
        s.offer(c, data);
      }
    });
    return () => {
      sub.close();
      this.subs.delete(sub);
      if (this.subs.size === 0) {
        this.offBus?.();
        this.offBus = undefined;
      }
    };
  }

  get size(): number {
    return this.subs.size;
  }

  /** Open watches of one API token (for the per-token cap). */
  countForToken(tokenName: string): number {
    let n = 0;
    for (const s of this.subs) if (!s.isClosed && s.owner?.tokenName === tokenName) n++;
    return n;
  }

  private revoke(sub: WatchSubscriber, why: string): void {
    this.log.info({ user: sub.owner?.user, token: sub.owner?.tokenName, why }, 'watch closed: credential revoked');
    sub.closeWith(WATCH_CLOSE_UNAUTHORIZED, why);
  }

  /**
   * A User or ApiToken changed on this server: closes, before the change is delivered, every watch
   * it plainly revokes (token deleted; user deleted, re-created, disabled or given a lower role), and
   * re-checks the others of that token or user against the store (e.g. an expiry moved into the past).
   */
  private credentialChanged(c: Change): void {
    const name = c.object.metadata.name;
    const obj = c.object as Change['object'] & { metadata: { uid?: string }; spec?: { role?: Role; disabled?: boolean } };
    for (const sub of this.subs) {
      const o = sub.owner;
      if (!o || sub.isClosed) continue;
      if (c.kind === 'ApiToken' && o.tokenName === name) {
        if (c.type === 'DELETED') this.revoke(sub, `API token "${name}" was deleted`);
        else void this.recheck(sub);
      } else if (c.kind === 'User' && o.user === name) {
        const role = obj.spec?.role;
        if (c.type === 'DELETED') this.revoke(sub, `user "${name}" was deleted`);
        else if (obj.metadata.uid && obj.metadata.uid !== o.userUid) this.revoke(sub, `user "${name}" is another user now`);
        else if (obj.spec?.disabled) this.revoke(sub, `user "${name}" was disabled`);
        else if (role && ROLE_RANK[role] < ROLE_RANK[o.role]) this.revoke(sub, `the role of user "${name}" was lowered to ${role}`);
      }
    }
  }

  /** Closes the watch unless its token still authenticates as the same user with at least the same role. */
  private async recheck(sub: WatchSubscriber): Promise<void> {
    const o = sub.owner;
    if (!o || sub.isClosed) return;
    try {
      const cred = await credentialOf(this.db, o.tokenHash);
      if (cred.userUid !== o.userUid) this.revoke(sub, `user "${o.user}" is another user now`);
      else if (ROLE_RANK[cred.role] < ROLE_RANK[o.role]) this.revoke(sub, `the role of user "${o.user}" was lowered to ${cred.role}`);
    } catch (err) {
      if (err instanceof EdgeplaneError && err.code === 'Unauthenticated') this.revoke(sub, err.message);
      else this.log.warn({ err }, 'cannot re-check a watch credential');
    }
  }

  private async recheckAll(): Promise<void> {
    for (const sub of [...this.subs]) await this.recheck(sub);
  }

  /**
   * Another replica committed a change: read back like an announced write; a deletion cannot be read
   * back, so watchers get it with the name alone (resourceVersion 0).
   */
  remoteChange(kind: string, name: string, type: Change['type']): void {
    if (type !== 'DELETED') this.announced({ kind, name, type });
    else if (this.subs.size > 0) this.bus.publish({ type, kind, object: { kind, metadata: { name, resourceVersion: '0' } } }, 'store');
  }

  /** Notices may have been missed: every watcher re-lists. */
  resyncAll(): void {
    for (const s of this.subs) s.resync();
  }

  private announced(n: StoreNotice): void {
    if (![...this.subs].some((s) => s.wants(n.kind))) return;
    const names = this.pending.get(n.kind) ?? new Map<string, StoreNotice['type']>();
    this.pending.set(n.kind, names);
    if (names.get(n.name) !== 'ADDED') names.set(n.name, n.type);
    this.timer ??= setTimeout(() => void this.readBack(), ANNOUNCE_BATCH_MS);
  }

  /** Reads announced objects back from this server's store and publishes those that are there. */
  private async readBack(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    this.timer = undefined;
    for (const [kind, names] of batch) {
      const svc = this.services().find((s) => s.info.kind === kind);
      if (!svc) continue;
      try {
        const all = [...names.keys()];
        for (let i = 0; i < all.length; i += 500) {
          const rows = (await (this.db as unknown as Db)
            .selectFrom(svc.table as 'events')
            .selectAll()
            .where('name', 'in', all.slice(i, i + 500))
            .execute()) as unknown as ResourceRow[];
          for (const row of rows) {
            const object = svc.toObject(row);
            this.bus.publish({ type: names.get(row.name) ?? 'MODIFIED', kind, object }, 'store');
          }
        }
      } catch (err) {
        this.log.warn({ err, kind }, 'reading announced changes failed');
      }
    }
  }
}
