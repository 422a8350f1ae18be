import {
  type CreateSessionRequest,
  EdgeplaneError,
  OperatorClientMessage,
  type OperatorServerMessage,
  SESSION_WINDOW_BYTES,
  SESSION_WINDOW_SLACK_BYTES,
  type SessionFromAgent,
  type SessionPhase,
} from '@edgeplane/protocol';
import type { FastifyBaseLogger } from 'fastify';
import { Gauge } from 'prom-client';
import type { WebSocket } from 'ws';
import type { ConnectionHub } from '../agent/connection-hub.js';
import type { Metrics } from '../http/metrics.js';
import type { Db } from '../store/db.js';
import { Recording } from './recording.js';
import { recordSessionEnd, setSessionStatus } from './remote-session.service.js';

export interface BrokerOptions {
  db: Db;
  hub: ConnectionHub;
  metrics: Metrics;
  log: FastifyBaseLogger;
  recordingsDir: string;
  /** Unacknowledged bytes per session and direction (default SESSION_WINDOW_BYTES). */
  windowBytes?: number;
  maxRecordingBytes?: number;
  /** A created session nobody attaches to within this time ends (default 60 s). */
  attachTimeoutMs?: number;
}

export interface LiveSession {
  id: string;
  host: string;
  user: string;
  req: CreateSessionRequest;
  createdAt: number;
  expiresAt: number;
  phase: SessionPhase;
  status: Record<string, unknown>;
  operator?: WebSocket;
  recording: Recording;
  /** Output bytes handed to the operator socket and recording, not yet flushed: bounded by the window. */
  outPending: number;
  /** Agent output bytes received and not yet acked back (flow-control accounting of the agent's credit). */
  outUnacked: number;
  /** Operator input bytes sent to the agent and not yet acked by it. */
  inUnacked: number;
  inPaused: boolean;
  bytesIn: number;
  bytesOut: number;
  timers: NodeJS.Timeout[];
  idle?: NodeJS.Timeout;
}

/**
 * Brokers remote sessions between operator WebSockets and agent channels on this server. Flow control
 * (both directions, per session): the agent may have at most `window` output bytes unacknowledged; the
 * broker acks a chunk only after the operator socket and the recording have flushed it, so a slow
 * operator slows the agent instead of growing this process's memory. Operator input is forwarded while
 * less than `window` bytes wait for the agent's ack; past that the operator socket is paused (TCP
 * backpressure to the operator).
 */
export class SessionBroker {
  private readonly live = new Map<string, LiveSession>();
  private readonly window: number;
  private readonly buffered: Gauge;
  private readonly active: Gauge;

  constructor(private readonly o: BrokerOptions) {
    this.window = o.windowBytes ?? SESSION_WINDOW_BYTES;
    this.buffered = new Gauge({
      name: 'edgeplane_remote_session_buffered_bytes',
      help: 'Remote-session output bytes held by this server (in flight to operators and recordings)',
      registers: [o.metrics.registry],
    });
    this.active = new Gauge({ name: 'edgeplane_remote_sessions', help: 'Remote sessions open on this server', registers: [o.metrics.registry] });
  }

  get windowBytes(): number {
    return this.window;
  }

  /** Bytes currently buffered for all sessions (what the gauge exports). */
  bufferedBytes(): number {
    let n = 0;
    for (const s of this.live.values()) n += s.outPending;
    return n;
  }

  isConnected(host: string): boolean {
    return this.o.hub.isConnected(host);
  }

  get(id: string): LiveSession | undefined {
    return this.live.get(id);
  }

  /** Registers a created session; it opens on the agent when the operator attaches. */
  add(id: string, host: string, user: string, req: CreateSessionRequest, status: Record<string, unknown>): LiveSession {
    const now = Date.now();
    const s: LiveSession = {
      id,
      host,
      user,
      req,
      createdAt: now,
      expiresAt: now + req.ttlSeconds * 1000,
      phase: 'pending',
      status,
      recording: new Recording(
        this.o.recordingsDir,
        { id, host, user, kind: req.kind, reason: req.reason, cols: req.cols, rows: req.rows },
        this.o.maxRecordingBytes ?? 64 * 1024 * 1024,
      ),
      outPending: 0,
      outUnacked: 0,
      inUnacked: 0,
      inPaused: false,
      bytesIn: 0,
      bytesOut: 0,
      timers: [],
    };
    s.timers.push(setTimeout(() => void this.end(s, { reason: 'ttl', message: `time limit of ${req.ttlSeconds} s reached` }), req.ttlSeconds * 1000));
    s.timers.push(
      setTimeout(
        () => s.phase === 'pending' && !s.operator && void this.end(s, { reason: 'not-attached', message: 'no operator attached in time' }),
        this.o.attachTimeoutMs ?? 60_000,
      ),
    );
    this.live.set(id, s);
    this.active.set(this.live.size);
    return s;
  }

  /** Binds the operator socket and asks the agent to open the session. */
  attach(s: LiveSession, socket: WebSocket): void {
    if (s.operator || s.phase !== 'pending') throw new EdgeplaneError('SessionEnded', `remote session "${s.id}" is already attached or ended`);
    s.operator = socket;
    socket.on('message', (data, isBinary) => this.onOperatorMessage(s, data.toString(), isBinary));
    socket.on('close', () => {
      if (this.live.get(s.id) === s) void this.end(s, { reason: 'operator-detached', message: 'the operator disconnected' });
    });
    socket.on('error', (err) => this.o.log.debug({ err, session: s.id }, 'operator socket error'));
    const { req } = s;
    const sent = this.o.hub.send(s.host, {
      type: 'session.open',
      id: s.id,
      kind: req.kind,
      ...(req.command ? { command: req.command } : {}),
      ...(req.logs ? { logs: req.logs } : {}),
      cols: req.cols,
      rows: req.rows,
      ttlSeconds: Math.max(1, Math.ceil((s.expiresAt - Date.now()) / 1000)),
      idleTimeoutSeconds: req.idleTimeoutSeconds,
      window: this.window,
    });
    if (!sent) void this.end(s, { reason: 'agent-disconnected', message: `host "${s.host}" is not connected` });
    else this.armIdle(s);
  }

  private armIdle(s: LiveSession): void {
    if (s.idle) s.idle.refresh();
    else
      s.idle = setTimeout(
        () => void this.end(s, { reason: 'idle', message: `no input or output for ${s.req.idleTimeoutSeconds} s` }),
        s.req.idleTimeoutSeconds * 1000,
      );
  }

  private toOperator(s: LiveSession, msg: OperatorServerMessage, done?: () => void): void {
    const ws = s.operator;
    if (!ws || ws.readyState !== ws.OPEN) {
      done?.();
      return;
    }
    ws.send(JSON.stringify(msg), () => done?.());
  }

  private onOperatorMessage(s: LiveSession, raw: string, isBinary: boolean): void {
    let msg: OperatorClientMessage;
    try {
      if (isBinary) throw new Error('binary frames are not accepted');
      const r = OperatorClientMessage.safeParse(JSON.parse(raw));
      if (!r.success) throw new Error(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      msg = r.data;
    } catch (err) {
      this.toOperator(s, { type: 'error', code: 'ValidationFailed', message: `invalid message: ${(err as Error).message}` });
      return;
    }
    if (s.phase === 'ended' || s.phase === 'refused') return;
    this.armIdle(s);
    switch (msg.type) {
      case 'input': {
        const bytes = Buffer.from(msg.data, 'base64');
        if (bytes.length === 0) return;
        s.bytesIn += bytes.length;
        s.inUnacked += bytes.length;
        if (s.req.kind === 'shell') s.recording.input(bytes);
        this.o.hub.send(s.host, { type: 'session.input', id: s.id, data: msg.data });
        if (s.inUnacked >= this.window && !s.inPaused) {
          s.inPaused = true;
          s.operator?.pause();
        }
        break;
      }
      case 'resize':
        s.recording.resize(msg.cols, msg.rows);
        this.o.hub.send(s.host, { type: 'session.resize', id: s.id, cols: msg.cols, rows: msg.rows });
        break;
      case 'eof':
        this.o.hub.send(s.host, { type: 'session.eof', id: s.id });
        break;
      case 'terminate':
        void this.end(s, { reason: 'terminated', message: `terminated by ${s.user}` });
        break;
    }
  }

  /** A session.* frame from the agent on `host`'s channel. Frames for another host's session are ignored. */
  onAgentFrame(host: string, msg: SessionFromAgent): void {
    const s = this.live.get(msg.id);
    if (!s || s.host !== host) {
      // A late frame of a session that ended: tell the agent to stop it (no-op if already gone).
      if (!s && msg.type !== 'session.exit' && msg.type !== 'session.refused')
        this.o.hub.send(host, { type: 'session.close', id: msg.id, reason: 'unknown session' });
      return;
    }
    switch (msg.type) {
      case 'session.opened':
        s.phase = 'active';
        s.status = { ...s.status, phase: 'active', startedAt: new Date().toISOString(), ...(msg.user ? { runAs: msg.user } : {}) };
        void setSessionStatus(this.o.db, s.id, 'active', s.status).catch((err) => this.o.log.error({ err }, 'cannot store session status'));
        this.toOperator(s, { type: 'opened', id: s.id, kind: s.req.kind, ...(msg.user ? { user: msg.user } : {}) });
        break;
      case 'session.output': {
        const bytes = Buffer.from(msg.data, 'base64');
        s.bytesOut += bytes.length;
        s.outUnacked += bytes.length;
        if (s.outUnacked > this.window + SESSION_WINDOW_SLACK_BYTES) {
          // The agent ignores its credit: end the session rather than buffer without bound.
          void this.end(s, { reason: 'flow-control-violation', message: 'agent sent more than its window' });
          return;
        }
        this.armIdle(s);
        s.outPending += bytes.length;
        this.buffered.inc(bytes.length);
        let waiting = s.req.kind === 'bundle' ? 1 : 2;
        const flushed = () => {
          if (--waiting > 0) return;
          s.outPending -= bytes.length;
          this.buffered.dec(bytes.length);
          if (this.live.get(s.id) !== s) return;
          s.outUnacked -= bytes.length;
          this.o.hub.send(s.host, { type: 'session.ack', id: s.id, bytes: bytes.length });
        };
        if (s.req.kind !== 'bundle') s.recording.output(msg.stream, bytes, flushed);
        this.toOperator(s, { type: 'output', stream: msg.stream, data: msg.data }, flushed);
        break;
      }
      case 'session.ack':
        s.inUnacked = Math.max(0, s.inUnacked - msg.bytes);
        if (s.inPaused && s.inUnacked < this.window) {
          s.inPaused = false;
          s.operator?.resume();
        }
        break;
      case 'session.exit':
        void this.end(s, { reason: msg.reason, code: msg.code, signal: msg.signal, fromAgent: true });
        break;
      case 'session.refused':
        void this.end(s, { reason: 'refused', message: msg.reason, refused: true, fromAgent: true });
        break;
    }
  }

  /** The agent's channel closed: its processes are gone (the agent ends them on disconnect). */
  agentDisconnected(host: string): void {
    for (const s of [...this.live.values()])
      if (s.host === host && s.phase !== 'pending') void this.end(s, { reason: 'agent-disconnected', message: 'the agent disconnected', fromAgent: true });
  }

  /** Ends a session once: tells the agent (unless it ended there), the operator, the store and the audit log. */
  async end(
    s: LiveSession,
    e: { reason: string; message?: string; code?: number | null; signal?: string | null; refused?: boolean; fromAgent?: boolean },
  ): Promise<void> {
    if (this.live.get(s.id) !== s) return;
    this.live.delete(s.id);
    this.active.set(this.live.size);
    for (const t of s.timers) clearTimeout(t);
    if (s.idle) clearTimeout(s.idle);
    if (!e.fromAgent && s.operator) this.o.hub.send(s.host, { type: 'session.close', id: s.id, reason: e.reason });
    const phase: SessionPhase = e.refused ? 'refused' : 'ended';
    s.phase = phase;
    s.recording.marker(`session ended: ${e.reason}${e.message ? ` (${e.message})` : ''}`);
    await s.recording.close();
    s.status = {
      ...s.status,
      phase,
      endedAt: new Date().toISOString(),
      endReason: e.reason,
      ...(e.message ? { message: e.message } : {}),
      ...(e.code !== undefined ? { exitCode: e.code } : {}),
      ...(e.signal !== undefined ? { signal: e.signal } : {}),
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
    };
    try {
      await recordSessionEnd(this.o.db, s, phase, e);
    } catch (err) {
      this.o.log.error({ err, session: s.id }, 'cannot record the end of a remote session');
    }
    // The operator hears last, so what it reads from the API after the exit frame is already final.
    if (e.refused) this.toOperator(s, { type: 'refused', reason: e.message ?? 'refused by the agent' });
    else this.toOperator(s, { type: 'exit', code: e.code ?? null, signal: e.signal ?? null, reason: e.reason });
    s.operator?.close(1000, e.reason.slice(0, 100));
    if (s.inPaused) s.operator?.resume();
  }

  /** Ends every live session (server shutdown). */
  async stop(): Promise<void> {
    await Promise.all([...this.live.values()].map((s) => this.end(s, { reason: 'server-shutdown', message: 'the server is shutting down' })));
  }
}
