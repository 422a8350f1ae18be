import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { type AgentMessage, CLOSE_CODES, ErrorBody, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, ServerMessage } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import WebSocket from 'ws';

/** How a connection ended. */
export interface ChannelOutcome {
  /** The WebSocket upgrade succeeded. */
  opened: boolean;
  /** How long it was open, ms (0 if it never opened). */
  openMs: number;
  code: number;
  reason: string;
  /** Set when the server refused the upgrade. */
  httpStatus?: number;
  /** Error code from the refusal body, e.g. ConnectTokenInvalid, HostRejected. */
  errorCode?: string;
  errorMessage?: string;
}

export interface ChannelOptions {
  url: string;
  token: string;
  logger: Logger;
  handshakeTimeoutMs: number;
  /** CA certificates to trust for a wss:// server (system store included, see trustedCas); default Node's store. */
  ca?: string[];
}

/**
 * The server handed this agent off (a replica draining for shutdown): the caller reconnects at once,
 * with a little jitter and without registering, instead of waiting out its backoff.
 */
export function handedOff(outcome: ChannelOutcome): boolean {
  return outcome.code === CLOSE_CODES.reconnectElsewhere;
}

/**
 * One WebSocket connection to the server. Emits 'open' and 'message' (only messages that pass the
 * protocol's ServerMessage schema); `closed` resolves once the socket is gone, however it ended.
 */
export class Channel extends EventEmitter<{ open: []; message: [ServerMessage] }> {
  readonly closed: Promise<ChannelOutcome>;
  private readonly ws: WebSocket;
  private readonly logger: Logger;
  private openedAt = 0;
  private lastSeen = 0;
  private heartbeat?: NodeJS.Timeout;
  private refusal: { httpStatus?: number; errorCode?: string; errorMessage?: string } = {};

  constructor(options: ChannelOptions) {
    super();
    this.logger = options.logger;
    this.ws = new WebSocket(options.url, {
      // A server of another protocol major refuses the upgrade with ProtocolVersionUnsupported.
      headers: { authorization: `Bearer ${options.token}`, [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
      handshakeTimeout: options.handshakeTimeoutMs,
      ...(options.ca ? { ca: options.ca } : {}),
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.stopHeartbeat();
        // The server gave up on this connection's messages (not JSON, or not its schema): likely an
        // agent and server of different protocol versions. The agent reconnects with backoff as after any close.
        if (code === CLOSE_CODES.invalidMessage)
          this.logger.warn(
            { code, reason: reason.toString() },
            'server closed the channel over invalid messages from this agent; check agent and server versions',
          );
        const opened = this.openedAt > 0;
        resolve({ opened, openMs: opened ? Date.now() - this.openedAt : 0, code, reason: reason.toString(), ...this.refusal });
      });
    });
    // ws follows every 'error' with 'close'; the outcome is reported there.
    this.ws.on('error', (err) => this.logger.debug({ err: err.message }, 'websocket error'));
    this.ws.on('unexpected-response', (_req, res) => this.onRefused(res));
    this.ws.on('open', () => {
      this.openedAt = this.lastSeen = Date.now();
      this.emit('open');
    });
    this.ws.on('pong', () => {
      this.lastSeen = Date.now();
    });
    this.ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a message; `done` learns whether the socket took it. Returns false if the socket is not open. */
  send(message: AgentMessage, done?: (err?: Error) => void): boolean {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message), done);
    return true;
  }

  /**
   * Calls `beat` every `intervalMs` and pings the socket alongside; a server that answered nothing
   * (no message, no pong) for 3 intervals (at least 5 s) is taken as gone, which catches half-open
   * TCP connections that never report a close.
   */
  startHeartbeat(intervalMs: number, beat: () => void): void {
    this.stopHeartbeat();
    const deadAfterMs = Math.max(3 * intervalMs, 5000);
    this.heartbeat = setInterval(() => {
      if (!this.isOpen) return;
      if (Date.now() - this.lastSeen > deadAfterMs) {
        this.logger.warn({ silentMs: Date.now() - this.lastSeen }, 'server stopped answering; dropping connection');
        this.ws.terminate();
        return;
      }
      beat();
      this.ws.ping();
    }, intervalMs);
    this.heartbeat.unref();
  }

  /** Closes cleanly; drops the socket if the server does not finish the close within `timeoutMs`. */
  async close(code = 1000, reason = '', timeoutMs = 1000): Promise<ChannelOutcome> {
    this.stopHeartbeat();
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    const timer = setTimeout(() => this.ws.terminate(), timeoutMs);
    try {
      return await this.closed;
    } finally {
      clearTimeout(timer);
    }
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    this.lastSeen = Date.now();
    if (isBinary) {
      this.logger.warn('ignoring binary message from server');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(data.toString());
    } catch {
      this.logger.warn('ignoring server message that is not JSON');
      return;
    }
    const parsed = ServerMessage.safeParse(json);
    if (!parsed.success) {
      const type = typeof json === 'object' && json !== null ? (json as { type?: unknown }).type : undefined;
      this.logger.warn({ type, issues: parsed.error.issues.slice(0, 5) }, 'ignoring invalid server message');
      return;
    }
    this.emit('message', parsed.data);
  }

  /** The server refused the upgrade: keep its status and error code for the outcome, then drop the request. */
  private onRefused(res: IncomingMessage): void {
    this.refusal.httpStatus = res.statusCode;
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 64 * 1024) chunks.push(chunk);
    });
    const done = () => {
      try {
        const body = ErrorBody.safeParse(JSON.parse(Buffer.concat(chunks).toString()));
        if (body.success) {
          this.refusal.errorCode = body.data.error.code;
          this.refusal.errorMessage = body.data.error.message;
        }
      } catch {
        /* body is not JSON: the status says enough */
      }
      this.ws.terminate();
    };
    res.on('end', done);
    res.on('error', done);
  }
}
