import type { Logger } from 'pino';
import type { ResourceRow } from '../resource/resource.repository.js';
import type { ResourceService } from '../resource/resource.service.js';
import type { Db } from '../store/db.js';
import { type ChangeBus, onAnnouncedWrite, type StoreNotice } from './change-bus.js';
import type { WatchSubscriber } from './subscriber.js';

/** How long announced writes are collected before they are read back in one query per kind. */
const ANNOUNCE_BATCH_MS = 50;

/** Fans the server's committed changes out to its watch subscribers. */
export class WatchHub {
  private subs = new Set<WatchSubscriber>();
  private pending = new Map<string, Map<string, StoreNotice['type']>>();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void)[] = [];
  /** Set while anyone watches: publishers skip reading objects back when the bus has no listener. */
  private offBus: (() => void) | undefined;

  constructor(
    private db: Db,
    private bus: ChangeBus,
    private services: () => ResourceService[],
    private log: Logger,
  ) {}

  start(): void {
    this.unsubscribe.push(onAnnouncedWrite((n) => this.announced(n)));
  }

  stop(): void {
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
      for (const s of this.subs) s.offer(c);
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

  private announced(n: StoreNotice): void {
    if (![...this.subs].some((s) => s.wants(n.kind))) return;
    const names = this.pending.get(n.kind) ?? new Map<string, StoreNotice['type']>();
    this.pending.set(n.kind, names);
    if (names.get(n.name) !== 'ADDED') names.set(n.name, n.type);
    this.timer ??= setTimeout(() => void this.readBack(), ANNOUNCE_BATCH_MS);
  }

  /** Reads announced objects from this server's store and publishes those that are there. */
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
            this.bus.publish({ type: names.get(row.name) ?? 'MODIFIED', kind, object });
          }
        }
      } catch (err) {
        this.log.warn({ err, kind }, 'reading announced changes failed');
      }
    }
  }
}
