import { EventEmitter } from 'node:events';
import { type CreateSessionRequest, OperatorServerMessage } from '@edgeplane/protocol';
import WebSocket from 'ws';
import { type ApiClient, ApiError, type Resource } from './api-client.js';

export interface SessionEnd {
  code: number | null;
  signal: string | null;
  reason: string;
  /** Set when the agent refused the session (e.g. remote shell disabled); reason says why. */
  refused?: boolean;
}

type CreateBody = Partial<CreateSessionRequest> & Pick<CreateSessionRequest, 'kind' | 'reason'>;

/** `POST /api/v1/edgehosts/<host>/sessions`: creates a RemoteSession (checks permission, reason, host online). */
export function createSession(client: ApiClient, host: string, body: CreateBody): Promise<Resource> {
  return client.request<Resource>('POST', `edgehosts/${encodeURIComponent(host)}/sessions`, { body });
}

/**
 * The operator end of a remote session: one WebSocket to `/api/v1/remotesessions/<id>/attach`, JSON
 * frames as described in docs/architecture.md. Emits 'opened', 'output' (stream, bytes), and resolves
 * `done` with how the session ended. Reading stops while a consumer is slow (`pause`), which pushes back
 * through the server to the agent.
 */
export class AttachedSession extends EventEmitter<{ opened: [{ user?: string }]; output: ['stdout' | 'stderr', Buffer] }> {
  readonly done: Promise<SessionEnd>;
  private readonly ws: WebSocket;

  constructor(server: string, id: string, auth: { token?: string; ticket?: string }, ca?: string[]) {
    super();
    const base = server.replace(/\/+$/, '').replace(/^http/, 'ws');
    const url = `${base}/api/v1/remotesessions/${encodeURIComponent(id)}/attach${auth.ticket ? `?ticket=${encodeURIComponent(auth.ticket)}` : ''}`;
    this.ws = new WebSocket(url, { headers: auth.token && !auth.ticket ? { authorization: `Bearer ${auth.token}` } : {}, ...(ca ? { ca } : {}) });
    let end: SessionEnd | undefined;
    let failure: Error | undefined;
    this.done = new Promise((resolve, reject) => {
      this.ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          try {
            const e = JSON.parse(body).error;
            failure = new ApiError(res.statusCode ?? 0, e.code, e.message);
          } catch {
            failure = new ApiError(res.statusCode ?? 0, `HTTP${res.statusCode}`, `cannot attach: HTTP ${res.statusCode}`);
          }
          this.ws.terminate();
        });
      });
      this.ws.on('error', (err) => {
        failure ??= err;
      });
      this.ws.on('close', (code, reason) => {
        if (end) resolve(end);
        else reject(failure ?? new Error(`session connection closed (${code}${reason.length ? `: ${reason}` : ''}) before the session ended`));
      });
    });
    this.done.catch(() => {}); // callers await it; an unobserved failure must not crash the process
    this.ws.on('message', (data) => {
      const parsed = OperatorServerMessage.safeParse(JSON.parse(data.toString()));
      if (!parsed.success) return;
      const msg = parsed.data;
      if (msg.type === 'opened') this.emit('opened', { user: msg.user });
      else if (msg.type === 'output') this.emit('output', msg.stream, Buffer.from(msg.data, 'base64'));
      else if (msg.type === 'exit') end = { code: msg.code, signal: msg.signal, reason: msg.reason };
      else if (msg.type === 'refused') end = { code: null, signal: null, reason: msg.reason, refused: true };
      else if (msg.type === 'error') failure = new ApiError(0, msg.code, msg.message);
    });
  }

  /** Resolves once the WebSocket is open (input sent before that is queued by the caller). */
  ready(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.done.then(() => reject(new Error('session ended')), reject);
    });
  }

  private send(msg: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }
  input(data: Buffer | string): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length; off += 16 * 1024) this.send({ type: 'input', data: buf.subarray(off, off + 16 * 1024).toString('base64') });
  }
  resize(cols: number, rows: number): void {
    this.send({ type: 'resize', cols, rows });
  }
  eof(): void {
    this.send({ type: 'eof' });
  }
  terminate(): void {
    this.send({ type: 'terminate' });
  }
  pause(): void {
    this.ws.pause();
  }
  resume(): void {
    this.ws.resume();
  }
  close(): void {
    this.ws.close();
  }
}

/** Creates a session and attaches to it with the API token. */
export async function openSession(
  client: ApiClient,
  token: string | undefined,
  host: string,
  body: CreateBody,
): Promise<{ session: Resource; attached: AttachedSession }> {
  const session = await createSession(client, host, body);
  const attached = new AttachedSession(client.server, session.metadata.name, { token }, client.trust.ca);
  return { session, attached };
}
