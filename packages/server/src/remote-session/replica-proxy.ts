import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { EdgeplaneError, ErrorBody, SESSION_WINDOW_BYTES } from '@edgeplane/protocol';
import type { FastifyBaseLogger } from 'fastify';
import WebSocket from 'ws';
import { hostReplica, liveReplicaUrl } from '../agent/replica.repository.js';
import type { Db } from '../store/db.js';

/**
 * Remote sessions across replicas (PostgreSQL). A session is served by the replica holding the host's
 * agent channel: its broker does the flow control with the agent, the recording and the store writes,
 * exactly as for a local session. Any other replica proxies the operator to it: the create and
 * terminate requests and the recording over HTTP, the attach WebSocket message by message.
 *
 * Replicas authenticate each other with a shared secret (`replicaSecret`, EDGEPLANE_REPLICA_SECRET),
 * sent in REPLICA_AUTH_HEADER. Why a secret rather than mTLS: replicas already share one secret
 * (EDGEPLANE_SECRET_KEY) and one database, so a second shared secret adds no new distribution problem,
 * and it works the same over plain HTTP on a private network and over HTTPS, without a CA, per-replica
 * certificates or a second listener. The operator's own credential (API token or attach ticket) is
 * forwarded and checked by the serving replica as usual; the secret only vouches for what a replica
 * adds: the base URL of session links (FORWARDED_BASE_HEADER) and that the request was already
 * proxied once (a proxied request is never proxied again, so a stale view of the store cannot loop).
 */
export const REPLICA_AUTH_HEADER = 'x-edgeplane-replica-auth';
export const FORWARDED_BASE_HEADER = 'x-edgeplane-forwarded-base';

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface SessionProxyOptions {
  db: Db;
  /** This replica's id (edge_hosts.replica, remote_sessions.replica). */
  replicaId: string;
  /** Shared by every replica; without it sessions are served only where the agent is connected. */
  secret?: string;
  /** Several replicas share the store (PostgreSQL). */
  shared: boolean;
  log: FastifyBaseLogger;
}

export class SessionProxy {
  constructor(private readonly o: SessionProxyOptions) {}

  get replicaId(): string {
    return this.o.replicaId;
  }

  /**
   * Whether the request was proxied by a peer replica: false without the header; a header with the
   * wrong secret (or on a replica without one) is refused, never taken as an operator request.
   */
  fromPeer(headers: IncomingHttpHeaders): boolean {
    const got = headers[REPLICA_AUTH_HEADER];
    if (got === undefined) return false;
    if (!this.o.secret || typeof got !== 'string' || !timingSafeEqual(digest(got), digest(this.o.secret)))
      throw new EdgeplaneError('Unauthenticated', 'the replica credential is not valid');
    return true;
  }

  /** The base URL a peer asked session links to use (its own public base); only from an authenticated peer. */
  forwardedBase(headers: IncomingHttpHeaders): string | undefined {
    const base = headers[FORWARDED_BASE_HEADER];
    return this.fromPeer(headers) && typeof base === 'string' && /^https?:\/\/[^\s/]+$/.test(base) ? base : undefined;
  }

  /**
   * The address of the live replica holding `host`'s agent, when it is another one. Throws HostOffline
   * when the host is on another replica but no secret is configured to reach it.
   */
  async peerForHost(host: string): Promise<string | undefined> {
    if (!this.o.shared) return undefined;
    const r = await hostReplica(this.o.db, host, new Date().toISOString());
    if (!r || r.id === this.o.replicaId) return undefined;
    if (!this.o.secret)
      throw new EdgeplaneError(
        'HostOffline',
        `host "${host}" is connected to another server replica; set the same EDGEPLANE_REPLICA_SECRET on every replica to open sessions through any of them`,
      );
    return r.url;
  }

  /** The address of the live replica serving session `replica` (its row's column), when it is another one. */
  async peerForSession(replica: string | null | undefined): Promise<string | undefined> {
    if (!this.o.shared || !this.o.secret || !replica || replica === this.o.replicaId) return undefined;
    return liveReplicaUrl(this.o.db, replica, new Date().toISOString());
  }

  private headers(base: string | undefined, authorization: string | undefined): Record<string, string> {
    return {
      [REPLICA_AUTH_HEADER]: this.o.secret!,
      ...(authorization ? { authorization } : {}),
      ...(base ? { [FORWARDED_BASE_HEADER]: base } : {}),
    };
  }

  /** Sends a request to a peer replica; its answer (status, content type, body) goes back unchanged. */
  async forward(peer: string, req: { method: string; url: string; headers: IncomingHttpHeaders; body?: unknown }, base?: string): Promise<Response> {
    const headers = this.headers(base, req.headers.authorization);
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    try {
      return await fetch(`${peer}${req.url}`, {
        method: req.method,
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      throw new EdgeplaneError('ReplicaUnreachable', `the server replica serving this session cannot be reached: ${(err as Error).message}`);
    }
  }

  /**
   * Opens the operator's attach WebSocket on the peer serving the session (same path and query, the
   * operator's Authorization header). Resolves paused, so no frame is lost before relay() wires it;
   * a refusal comes back as the peer's coded error, before the operator's upgrade completes.
   */
  openAttach(peer: string, url: string, authorization: string | undefined): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const up = new WebSocket(`${peer.replace(/^http/, 'ws')}${url}`, { headers: this.headers(undefined, authorization), handshakeTimeout: 10_000 });
      up.on('open', () => {
        up.pause();
        resolve(up);
      });
      up.on('unexpected-response', (_req, res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          if (text.length < 65_536) text += c;
        });
        res.on('end', () => {
          up.terminate();
          let body: ReturnType<typeof ErrorBody.safeParse> | undefined;
          try {
            body = ErrorBody.safeParse(JSON.parse(text));
          } catch {
            /* not our error format */
          }
          reject(
            body?.success
              ? new EdgeplaneError(body.data.error.code as 'SessionEnded', body.data.error.message)
              : new EdgeplaneError('ReplicaUnreachable', `the server replica serving this session answered HTTP ${res.statusCode}`),
          );
        });
      });
      up.on('error', (err) => reject(new EdgeplaneError('ReplicaUnreachable', `the server replica serving this session cannot be reached: ${err.message}`)));
    });
  }

  /**
   * Relays frames both ways between the operator's socket and the peer's. Flow control carries
   * across: a side whose frames are not yet written to the other socket beyond one session window
   * is paused (TCP back-pressure), so a slow operator slows the serving replica's acks and thus the
   * agent, and this replica never buffers more than a window per direction.
   */
  relay(operator: WebSocket, up: WebSocket): void {
    const pipe = (from: WebSocket, to: WebSocket) => {
      let pending = 0;
      from.on('message', (data: Buffer, isBinary) => {
        if (to.readyState !== WebSocket.OPEN) return;
        const n = data.length;
        pending += n;
        if (pending > SESSION_WINDOW_BYTES && !from.isPaused) from.pause();
        to.send(data, { binary: isBinary }, () => {
          pending -= n;
          if (pending <= SESSION_WINDOW_BYTES && from.isPaused) from.resume();
        });
      });
    };
    pipe(up, operator);
    pipe(operator, up);
    // Codes 1005/1006 say "none given" / "dropped" and cannot be sent: pass on a normal or error close.
    const sendable = (code: number) =>
      code === 1000 || (code >= 3000 && code <= 4999) || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006) ? code : 1011;
    up.on('close', (code, reason) => operator.readyState === WebSocket.OPEN && operator.close(sendable(code), reason));
    operator.on('close', () => up.readyState === WebSocket.OPEN && up.close(1000, 'operator detached'));
    up.on('error', (err) => this.o.log.debug({ err: err.message }, 'proxied session: replica socket error'));
    operator.on('error', (err) => this.o.log.debug({ err: err.message }, 'proxied session: operator socket error'));
    up.resume();
  }
}
