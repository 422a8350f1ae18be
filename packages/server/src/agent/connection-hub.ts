import { randomUUID } from 'node:crypto';
import { CLOSE_CODES, type ServerMessage } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { connectivityEvent } from '../edgehost/connectivity-events.js';
import { findHostKeys, findHostsKeys, markAllOffline, setLastSeen } from '../edgehost/edgehost.repository.js';
import { edgeHosts, keyFingerprint } from '../edgehost/edgehost.service.js';
import { recordEvents } from '../event/event.service.js';
import type { Metrics } from '../http/metrics.js';
import type { HostChange, HostNotifier } from '../resource/context.js';
import type { Db } from '../store/db.js';
import { ChangeBus } from '../watch/change-bus.js';
import type { ReplicaNotice } from '../watch/replica-bus.js';
import { specMessage } from './channel.js';
import { DEFAULT_EVENT_BUDGET, EventBudget, LogThrottle } from './channel-limits.js';
import { liveReplicaIds, renewReplica, retireReplica, setOfflineOfDeadReplicas, setOfflineVia, setOnlineVia } from './replica.repository.js';

interface Connection {
  host: string;
  socket: WebSocket;
  keyFingerprint: string;
  lastSeen: number;
  /** Generation of the last spec sent on this channel. */
  sentGeneration?: number;
}

export interface HubOptions {
  offlineAfterSeconds: number;
  heartbeatIntervalSeconds: number;
  /** How often remembered last-seen times are written, in one statement. */
  flushIntervalMs?: number;
  /** Agent events per host: a burst, then this many per second; the excess is dropped. Default 50, 1. */
  eventBurst?: number;
  eventsPerSecond?: number;
  /** Invalid messages (not JSON, or failing the schema) one channel may send before it is closed with 4400; default 20. */
  maxInvalidMessages?: number;
  /**
   * Several server replicas share the store (PostgreSQL). Each holds a lease row it renews every third
   * of `replicaLeaseSeconds`; hosts are online through the replica holding their channel, and every
   * replica takes offline the hosts of a replica whose lease ran out. Without it (SQLite, one process)
   * every host left online is taken offline at start.
   */
  sharedStore?: boolean;
  /** Lease of this replica; default offlineAfterSeconds. A dead replica's hosts go offline within 4/3 of it. */
  replicaLeaseSeconds?: number;
  /** This replica's id (default: a fresh UUID per start). */
  replicaId?: string;
  /** Agent channels held at once (the descriptor budget); new ones beyond it are refused. Default unlimited. */
  maxChannels?: number;
  /**
   * Shared store: how long after a graceful stop this replica's lease still covers the hosts it handed
   * off, so agents reconnecting elsewhere are never taken offline; those that do not come back go
   * offline at the next sweep after it. Default min(lease, 10 s).
   */
  handoffGraceMs?: number;
}

/**
 * Live agent connections of this server process. Built for tens of thousands of agents: a heartbeat
 * only updates memory; last-seen is flushed in batches; connectivity is written only when it changes,
 * and those writes are batched too.
 */
export class ConnectionHub implements HostNotifier {
  private conns = new Map<string, Connection>();
  private seenSinceFlush = new Set<string>();
  private pendingConnectivity = new Map<string, 'online' | 'offline'>();
  private timers: NodeJS.Timeout[] = [];
  private flushing: Promise<void> = Promise.resolve();
  /** Identifies this process in the store (edge_hosts.replica, replicas.id). */
  readonly replicaId: string;
  private readonly startedAt = new Date().toISOString();
  private leaseRenewedAt = 0;
  private drainingSince = 0;
  /** Where the other replicas reach this one (advertise()); written with the lease. */
  private url?: string;
  /** Committed changes of this server, for watchers (the console); connectivity flushes publish here too. */
  readonly changes = new ChangeBus();
  /** Other replicas sharing the store (PostgreSQL): host changes and spec pushes for agents held elsewhere go there. */
  replicas?: { send(notice: ReplicaNotice): void };
  /**
   * Shared store: another replica's lease ran out. A replica commits a change before it sends the
   * change's notice, so one that died (kill -9) may have committed changes whose notices never went
   * out (a host spec the controllers wrote just before their holder died): the listener resyncs.
   */
  onReplicaLost?: (ids: string[]) => void;
  /** Other replicas live at the last sweep (undefined before the first). */
  private liveReplicas?: Set<string>;
  /** Agent events allowed per host (across reconnects). */
  readonly events: EventBudget;
  /** One warning per host and minute about invalid agent messages; the rest go to debug. */
  readonly invalidMessageLogs = new LogThrottle();

  constructor(
    private db: Db,
    private log: Logger,
    private metrics: Metrics,
    readonly options: HubOptions,
  ) {
    this.replicaId = options.replicaId ?? randomUUID();
    this.events = new EventBudget(metrics, {
      burst: options.eventBurst ?? DEFAULT_EVENT_BUDGET.burst,
      perSecond: options.eventsPerSecond ?? DEFAULT_EVENT_BUDGET.perSecond,
    });
  }

  async start(): Promise<void> {
    if (this.options.sharedStore) {
      // Other replicas' hosts stay online; those of replicas that stopped renewing go offline.
      await this.renewLease();
      await this.sweepDeadReplicas();
      const every = this.leaseMs() / 3;
      this.timers.push(setInterval(() => void this.renewLease().catch((err) => this.log.warn({ err }, 'replica lease renewal failed')), every).unref());
      this.timers.push(setInterval(() => void this.sweepDeadReplicas(), every).unref());
    } else {
      const n = await markAllOffline(this.db);
      if (n) this.log.info({ hosts: n }, 'marked hosts offline left online by a previous run');
    }
    const sweepMs = Math.min(1000, (this.options.offlineAfterSeconds * 1000) / 4);
    this.timers.push(setInterval(() => this.sweep(), sweepMs).unref());
    this.timers.push(setInterval(() => void this.flush(), 200).unref());
    this.timers.push(setInterval(() => void this.flushLastSeen(), this.options.flushIntervalMs ?? 5000).unref());
  }

  get size(): number {
    return this.conns.size;
  }

  /** Shared store: publishes the address other replicas proxy remote sessions to (known once listening). */
  async advertise(url: string): Promise<void> {
    this.url = url;
    if (this.options.sharedStore) await this.renewLease();
  }

  /** Set by drain(): /readyz answers not-ready and new agent channels are refused. */
  get draining(): boolean {
    return this.drainingSince > 0;
  }

  /**
   * Graceful shutdown, first step: this replica stops taking agents (and /readyz says so, so the load
   * balancer stops sending them); channels stay open until stop() hands them off.
   */
  drain(): void {
    if (!this.drainingSince) this.drainingSince = Date.now();
  }

  /** Whether a channel for `host` would exceed the cap (a host replacing its own channel never does). */
  full(host: string): boolean {
    return this.conns.size >= (this.options.maxChannels ?? Number.POSITIVE_INFINITY) && !this.conns.has(host);
  }

  isConnected(host: string): boolean {
    return this.conns.has(host);
  }

  /** Last time this process heard from the host, if it is connected here. */
  lastSeen(host: string): Date | undefined {
    const c = this.conns.get(host);
    return c ? new Date(c.lastSeen) : undefined;
  }

  attach(host: string, socket: WebSocket, publicKey: string): void {
    const old = this.conns.get(host);
    if (old) {
      this.log.info({ host }, 'new connection replaces the previous one');
      old.socket.close(CLOSE_CODES.replaced, 'replaced by a newer connection');
    }
    this.conns.set(host, { host, socket, keyFingerprint: keyFingerprint(publicKey), lastSeen: Date.now() });
    this.metrics.agentsConnected.set(this.conns.size);
    this.pendingConnectivity.set(host, 'online');
  }

  detach(host: string, socket: WebSocket): void {
    const c = this.conns.get(host);
    if (!c || c.socket !== socket) return; // already replaced by a newer connection
    this.conns.delete(host);
    this.metrics.agentsConnected.set(this.conns.size);
    // Draining with a shared store: the agent is moving to another replica (the load balancer may cut
    // its connection before the hand-off); its host stays online under this replica's ending lease.
    if (!(this.draining && this.options.sharedStore)) this.pendingConnectivity.set(host, 'offline');
  }

  touch(host: string): void {
    const c = this.conns.get(host);
    if (!c) return;
    c.lastSeen = Date.now();
    this.seenSinceFlush.add(host);
  }

  send(host: string, msg: ServerMessage): boolean {
    const c = this.conns.get(host);
    if (!c || c.socket.readyState !== c.socket.OPEN) return false;
    c.socket.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Completes a spec message just before it is sent: the cluster controller fills in secrets (the
   * join token) that the store keeps encrypted and never in EdgeHost.spec.
   */
  specFilter?: (host: string, msg: Extract<ServerMessage, { type: 'spec' }>) => Promise<ServerMessage>;

  /** Sends a host spec row to its agent, through specFilter. */
  async sendSpec(name: string, row: { spec: string; generation: number }): Promise<boolean> {
    const msg = specMessage(row) as Extract<ServerMessage, { type: 'spec' }>;
    const sent = this.send(name, this.specFilter ? await this.specFilter(name, msg) : msg);
    const c = this.conns.get(name);
    if (sent && c) c.sentGeneration = Number(row.generation);
    return sent;
  }

  /** Sends the host's current spec to its agent, if connected here (after the spec changed in the store). */
  async pushSpec(name: string): Promise<boolean> {
    if (!this.conns.has(name)) {
      // The agent may be connected to another replica.
      this.replicas?.send({ h: name, c: 'push' });
      return false;
    }
    const row = await this.db.selectFrom('edge_hosts').select(['spec', 'generation', 'state']).where('name', '=', name).executeTakeFirst();
    // A host waiting for approval gets no work until it is approved.
    return !!row && row.state !== 'pending-approval' && this.sendSpec(name, row);
  }

  hostChanged(name: string, change: HostChange): void {
    this.replicas?.send({ h: name, c: change });
    this.applyHostChange(name, change);
  }

  /** Another replica changed a host: acts on it if the host's channel is held here. */
  remoteHostChange(name: string, change: HostChange | 'push'): void {
    if (change === 'push') {
      if (this.conns.has(name)) void this.pushSpec(name);
    } else this.applyHostChange(name, change);
  }

  /**
   * Notices from other replicas may have been missed: every agent held here is checked against the
   * store as if it had just connected (gone, rejected, superseded key: closed; approved: told so;
   * a spec newer than the one it was sent: sent). Reads the hosts in batches, not one by one: a
   * replica holding thousands of agents resyncs with a few queries.
   */
  async resyncAgents(): Promise<void> {
    const names = [...this.conns.keys()];
    for (let i = 0; i < names.length; i += 500) {
      const batch = names.slice(i, i + 500);
      const rows = new Map((await findHostsKeys(this.db, batch)).map((r) => [r.name, r]));
      for (const name of batch) {
        const c = this.conns.get(name);
        if (!c) continue;
        const row = rows.get(name);
        if (!row || row.denied) c.socket.close(CLOSE_CODES.unauthorized, 'host deleted');
        else if (row.state === 'rejected') this.applyHostChange(name, 'rejected');
        else if (keyFingerprint(row.public_key) !== c.keyFingerprint) c.socket.close(CLOSE_CODES.unauthorized, 'device key superseded');
        else if (row.state === 'pending-approval') continue;
        else if (c.sentGeneration === undefined) {
          // Approved while this replica missed it: the agent waits for its state and first spec.
          this.send(name, { type: 'state', state: 'ready' });
          await this.sendSpec(name, row);
        } else if (row.generation !== c.sentGeneration) await this.sendSpec(name, row);
      }
    }
  }

  private applyHostChange(name: string, change: HostChange): void {
    const c = this.conns.get(name);
    if (!c) return;
    if (change === 'deleted') c.socket.close(CLOSE_CODES.unauthorized, 'host deleted');
    else if (change === 'rejected') {
      this.send(name, { type: 'state', state: 'rejected' });
      c.socket.close(CLOSE_CODES.rejected, 'host rejected');
    } else if (change === 'spec') {
      void this.pushSpec(name);
    } else {
      // Approval may have bound the host to a new key: a connection holding the old key must go.
      void findHostKeys(this.db, name).then((row) => {
        if (!row) return;
        if (keyFingerprint(row.public_key) !== c.keyFingerprint) c.socket.close(CLOSE_CODES.unauthorized, 'device key superseded');
        else {
          this.send(name, { type: 'state', state: 'ready' });
          void this.pushSpec(name);
        }
      });
    }
  }

  /** Drops connections that went quiet for longer than offline-after. */
  private sweep(): void {
    const cutoff = Date.now() - this.options.offlineAfterSeconds * 1000;
    for (const c of this.conns.values()) {
      if (c.lastSeen < cutoff) {
        this.log.info({ host: c.host }, 'no message within offline-after; closing');
        c.socket.terminate();
        this.detach(c.host, c.socket);
      }
    }
  }

  private leaseMs(): number {
    return (this.options.replicaLeaseSeconds ?? this.options.offlineAfterSeconds) * 1000;
  }

  /**
   * Renews this replica's lease. After a gap longer than the lease (the store was unreachable),
   * other replicas may have taken this replica's hosts offline: their connectivity is written again.
   */
  private async renewLease(): Promise<void> {
    const now = Date.now();
    await renewReplica(this.db, this.replicaId, this.startedAt, new Date(now + this.leaseMs()).toISOString(), this.url);
    if (this.leaseRenewedAt && now - this.leaseRenewedAt >= this.leaseMs()) {
      this.log.warn({ hosts: this.conns.size }, 'replica lease lapsed; writing the connectivity of its hosts again');
      for (const host of this.conns.keys()) if (!this.pendingConnectivity.has(host)) this.pendingConnectivity.set(host, 'online');
    }
    this.leaseRenewedAt = now;
  }

  /** Takes offline the hosts of replicas whose lease ran out (every replica does this; it is idempotent). */
  private async sweepDeadReplicas(): Promise<void> {
    try {
      const live = new Set(await liveReplicaIds(this.db, new Date().toISOString()));
      live.delete(this.replicaId);
      const lost = [...(this.liveReplicas ?? [])].filter((id) => !live.has(id));
      this.liveReplicas = live;
      if (lost.length > 0) {
        this.log.info({ replicas: lost }, 'replica lease ran out; resynchronising from the store');
        this.onReplicaLost?.(lost);
      }
      for (;;) {
        const at = new Date().toISOString();
        let names: string[] = [];
        await this.db.transaction().execute(async (trx) => {
          names = await setOfflineOfDeadReplicas(trx, at);
          await recordEvents(
            trx,
            names.map((name) => connectivityEvent(name, 'offline', at)),
          );
        });
        if (names.length === 0) return;
        this.log.info({ hosts: names.length }, 'took offline the hosts of replicas whose lease ran out');
        if (this.changes.size) await this.publishHosts(names);
        if (names.length < 500) return;
      }
    } catch (err) {
      this.log.warn({ err }, 'sweeping hosts of dead replicas failed');
    }
  }

  /** Writes connectivity changes collected since the last flush, one statement per direction. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pendingConnectivity.size === 0) return;
      const batch = this.pendingConnectivity;
      this.pendingConnectivity = new Map();
      const at = new Date().toISOString();
      const online = [...batch].filter(([, s]) => s === 'online').map(([h]) => h);
      const offline = [...batch].filter(([, s]) => s === 'offline').map(([h]) => h);
      try {
        for (let i = 0; i < online.length; i += 500) await this.writeConnectivity(online.slice(i, i + 500), 'online', at);
        for (let i = 0; i < offline.length; i += 500) await this.writeConnectivity(offline.slice(i, i + 500), 'offline', at);
        if (this.changes.size) await this.publishHosts([...online, ...offline]).catch((err) => this.log.warn({ err }, 'publishing host changes failed'));
      } catch (err) {
        this.log.error({ err }, 'connectivity flush failed; will retry');
        for (const [h, s] of batch) if (!this.pendingConnectivity.has(h)) this.pendingConnectivity.set(h, s);
      }
    });
    return this.flushing;
  }

  /** One chunk of a flush: the connectivity column and an Online/Offline event per real transition, together. */
  private async writeConnectivity(names: string[], state: 'online' | 'offline', at: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const changed = state === 'online' ? await setOnlineVia(trx, names, this.replicaId, at) : await setOfflineVia(trx, names, this.replicaId, at);
      await recordEvents(
        trx,
        changed.map((name) => connectivityEvent(name, state, at)),
      );
    });
  }

  /** Reads changed hosts back once and tells watchers; only when someone watches. */
  private async publishHosts(names: string[]): Promise<void> {
    for (let i = 0; i < names.length; i += 500) {
      const rows = await this.db
        .selectFrom('edge_hosts')
        .selectAll()
        .where('name', 'in', names.slice(i, i + 500))
        .execute();
      for (const row of rows) this.changes.publish({ type: 'MODIFIED', kind: 'EdgeHost', object: edgeHosts.toObject(row) });
    }
  }

  private async flushLastSeen(): Promise<void> {
    if (this.seenSinceFlush.size === 0) return;
    const hosts = [...this.seenSinceFlush];
    this.seenSinceFlush.clear();
    try {
      for (let i = 0; i < hosts.length; i += 500) await setLastSeen(this.db, hosts.slice(i, i + 500), new Date().toISOString());
    } catch (err) {
      this.log.warn({ err }, 'last-seen flush failed');
    }
  }

  /**
   * Closes every agent channel with `reconnectElsewhere` (the agents reconnect at once, through the load
   * balancer, without registering). Shared store: the hosts stay online through this replica, whose
   * lease is cut to the hand-off grace; the replica an agent reaches takes its host over without an
   * Offline event, and the other replicas' sweep takes offline those that did not come back. SQLite
   * (one process): the hosts go offline, as there is nowhere else to be online.
   */
  async stop(): Promise<void> {
    this.drain();
    for (const t of this.timers) clearInterval(t);
    // Connects not yet written go first: a late write naming this replica must not follow the agent's
    // connect on another one (it would take the host back under this replica's ending lease).
    await this.flush();
    const handedOff = [...this.conns.values()];
    for (const c of handedOff) {
      c.socket.close(CLOSE_CODES.reconnectElsewhere, 'server draining; reconnect elsewhere');
      if (this.options.sharedStore) {
        this.conns.delete(c.host);
        // Its connect (if not yet flushed) still counts: the host is online through this replica until handed over.
      } else this.detach(c.host, c.socket);
    }
    this.metrics.agentsConnected.set(this.conns.size);
    if (handedOff.length) this.log.info({ agents: handedOff.length }, 'agent channels handed off');
    await this.flush();
    await this.flushLastSeen();
    if (this.options.sharedStore) {
      const graceMs = this.options.handoffGraceMs ?? Math.min(this.leaseMs(), 10_000);
      await retireReplica(this.db, this.replicaId, new Date(Date.now() + graceMs).toISOString(), new Date(Date.now() - 86_400_000).toISOString()).catch((err) =>
        this.log.warn({ err }, 'ending the replica lease failed'),
      );
    }
  }
}
