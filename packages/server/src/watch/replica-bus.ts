import pg from 'pg';
import type { Logger } from 'pino';
import type { ConnectionHub } from '../agent/connection-hub.js';
import type { HostChange } from '../resource/context.js';
import type { Store } from '../store/db.js';
import type { WatchHub } from './watch-hub.js';

/** PostgreSQL channel all replicas of one store listen on. */
export const REPLICA_CHANNEL = 'edgeplane_changes';
/** NOTIFY payloads must stay under 8000 bytes; notices are packed into payloads up to this size. */
const MAX_PAYLOAD = 7000;

/** One notice between replicas: an object that changed (`k`ind, `n`ame, `t`ype) or a host its agent must hear about. */
export type ReplicaNotice = { k: string; n: string; t: 'ADDED' | 'MODIFIED' | 'DELETED' } | { h: string; c: HostChange | 'push' };

export interface ReplicaBusHandlers {
  /** Another replica committed a change to this object: read it back and tell local watchers. */
  change(kind: string, name: string, type: 'ADDED' | 'MODIFIED' | 'DELETED'): void;
  /** Another replica changed a host (or its spec): tell the agent if its channel is held here. */
  host(name: string, change: HostChange | 'push'): void;
  /** Notices may have been missed (the listening connection was lost and is back): start over from the store. */
  resync(): void;
}

/**
 * Change notices between server replicas over PostgreSQL LISTEN/NOTIFY. Only change notices travel
 * (kind and name, or a host name and what happened to it), never heartbeats and never objects: the
 * receiver reads objects back from the store, which is the truth. Notices sent within one tick go
 * out together, packed into few payloads. A replica that lost its listening connection reconnects
 * with backoff and then resynchronises (handlers.resync), since NOTIFY does not queue for the absent.
 */
export class ReplicaBus {
  private listener?: pg.Client;
  private sender?: pg.Pool;
  private outbox: string[] = [];
  private flushing = false;
  private stopped = false;
  private retryMs = 250;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(
    private readonly databaseUrl: string,
    readonly replicaId: string,
    private readonly handlers: ReplicaBusHandlers,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.sender = new pg.Pool({ connectionString: this.databaseUrl, max: 1 });
    this.sender.on('error', (err) => this.log.warn({ err: err.message }, 'replica notice connection lost'));
    await this.listen();
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl });
    client.on('notification', (m) => this.receive(m.payload));
    client.on('error', (err) => this.log.warn({ err: err.message }, 'replica listen connection lost'));
    client.on('end', () => {
      if (this.stopped || this.listener !== client) return;
      this.listener = undefined;
      this.scheduleReconnect();
    });
    await client.connect();
    await client.query(`LISTEN ${REPLICA_CHANNEL}`);
    this.listener = client;
    this.retryMs = 250;
  }

  private scheduleReconnect(): void {
    this.reconnectTimer = setTimeout(() => {
      this.listen().then(
        () => {
          this.log.info('replica listen connection back; resynchronising from the store');
          this.handlers.resync();
        },
        (err) => {
          this.log.warn({ err: (err as Error).message }, 'replica listen reconnect failed; will retry');
          this.retryMs = Math.min(this.retryMs * 2, 10_000);
          this.scheduleReconnect();
        },
      );
    }, this.retryMs);
    this.reconnectTimer.unref();
  }

  /** For tests and resilience checks: ends the listening connection as a network failure would. */
  dropListenConnection(): void {
    void this.listener?.end();
  }

  send(notice: ReplicaNotice): void {
    if (this.stopped) return;
    this.outbox.push(JSON.stringify(notice));
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    try {
      while (this.outbox.length > 0) {
        const batch = this.outbox;
        this.outbox = [];
        for (const payload of pack(batch, this.replicaId)) await this.sender?.query('select pg_notify($1, $2)', [REPLICA_CHANNEL, payload]);
      }
    } catch (err) {
      // Lost notices are what resync is for; the receivers' periodic checks (watch credentials,
      // pairing polls) and the agents' reconnects bound the damage meanwhile.
      this.log.warn({ err: (err as Error).message }, 'sending replica notices failed');
    } finally {
      this.flushing = false;
    }
  }

  private receive(payload: string | undefined): void {
    if (!payload) return;
    let msg: { o: string; n: ReplicaNotice[] };
    try {
      msg = JSON.parse(payload);
    } catch {
      return;
    }
    if (msg.o === this.replicaId || !Array.isArray(msg.n)) return;
    for (const n of msg.n) {
      if ('k' in n) this.handlers.change(n.k, n.n, n.t);
      else if ('h' in n) this.handlers.host(n.h, n.c);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    await this.flush();
    await this.listener?.end().catch(() => {});
    await this.sender?.end().catch(() => {});
  }
}

/** Packs serialized notices into payloads `{"o":origin,"n":[...]}` under MAX_PAYLOAD bytes each. */
function pack(notices: string[], origin: string): string[] {
  const head = `{"o":${JSON.stringify(origin)},"n":[`;
  const out: string[] = [];
  let cur: string[] = [];
  let size = head.length + 2;
  for (const n of notices) {
    if (cur.length > 0 && size + n.length + 1 > MAX_PAYLOAD) {
      out.push(`${head}${cur.join(',')}]}`);
      cur = [];
      size = head.length + 2;
    }
    cur.push(n);
    size += n.length + 1;
  }
  if (cur.length > 0) out.push(`${head}${cur.join(',')}]}`);
  return out;
}

/**
 * Joins a server to the other replicas of its PostgreSQL store: its committed changes, announced
 * writes and host changes go out; theirs come in to its watch hub and agent channels. Returns the bus
 * and where the app hands over its watch hub once built.
 */
export async function joinReplicas(store: Store, databaseUrl: string, hub: ConnectionHub, log: Logger) {
  let watch: WatchHub | undefined;
  const bus = new ReplicaBus(
    databaseUrl,
    hub.replicaId,
    {
      change: (kind, name, type) => watch?.remoteChange(kind, name, type),
      host: (name, change) => hub.remoteHostChange(name, change),
      resync: () => {
        watch?.resyncAll();
        void hub.resyncAgents().catch((err) => log.warn({ err }, 'resynchronising agents failed'));
      },
    },
    log,
  );
  await bus.start();
  hub.replicas = bus;
  // A replica that died may have committed changes whose notices it never sent: as after a lost listen.
  hub.onReplicaLost = () => {
    watch?.resyncAll();
    void hub.resyncAgents().catch((err) => log.warn({ err }, 'resynchronising agents failed'));
  };
  const off = [
    // Changes this server committed (API writes, connectivity); not those it read back after a notice.
    hub.changes.subscribe((c, source) => source === 'local' && bus.send({ k: c.kind, n: c.object.metadata.name, t: c.type })),
    store.scope.onAnnounce((n) => bus.send({ k: n.kind, n: n.name, t: n.type })),
  ];
  return {
    bus,
    attachWatch(w: WatchHub) {
      watch = w;
    },
    async stop() {
      for (const f of off) f();
      hub.replicas = undefined;
      hub.onReplicaLost = undefined;
      await bus.stop();
    },
  };
}
