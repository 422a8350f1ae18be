/**
 * TEST DOUBLE. A tiny control plane for the agent and sim tests (node:http + ws): it speaks the
 * agent protocol (register, connect with a device-signed token, hello/welcome) and records what
 * agents send. It is not the real server (packages/server) and checks only what tests need.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  AGENT_CONNECT_PATH,
  AGENT_REGISTER_PATH,
  AgentMessage,
  CONNECT_AUDIENCE,
  type DevicePublicKey,
  deviceKeyAlgorithm,
  type ErrorCode,
  PROTOCOL_VERSION,
  REGISTER_AUDIENCE,
  RegisterRequest,
  type ServerMessage,
} from '@edgeplane/protocol';
import { importJWK, jwtVerify } from 'jose';
import { type WebSocket, WebSocketServer } from 'ws';

export interface TestConnection {
  hostName: string;
  ws: WebSocket;
  /** Messages received, with arrival time (ms). */
  messages: { at: number; msg: AgentMessage }[];
  closed: boolean;
  send(msg: ServerMessage | Record<string, unknown>): void;
}

/** A canned answer to the next register call, instead of registering. */
export interface CannedResponse {
  status: number;
  code?: ErrorCode;
  headers?: Record<string, string>;
}

export interface TestServerOptions {
  heartbeatIntervalSeconds?: number;
}

export class TestServer {
  readonly registrations: RegisterRequest[] = [];
  readonly connections: TestConnection[] = [];
  /** Answers for the next register calls, consumed in order. */
  readonly registerResponses: CannedResponse[] = [];
  /** While set, connects are refused with this status and code. */
  refuseConnect?: { status: number; code: ErrorCode };
  /** Sent right after welcome when set. */
  spec?: { generation: number; spec: Record<string, unknown> };
  heartbeatIntervalSeconds: number;
  readonly hosts = new Map<string, { deviceUid: string; publicKey: DevicePublicKey }>();
  readonly seenJti = new Set<string>();
  private readonly http = createServer((req, res) => void this.onRequest(req, res));
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<Socket>();
  url = '';

  private constructor(options: TestServerOptions) {
    this.heartbeatIntervalSeconds = options.heartbeatIntervalSeconds ?? 30;
    this.http.on('upgrade', (req, socket, head) => void this.onUpgrade(req, socket as Socket, head));
    this.http.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(options: TestServerOptions = {}): Promise<TestServer> {
    const server = new TestServer(options);
    await new Promise<void>((resolve) => server.http.listen(0, '127.0.0.1', resolve));
    server.url = `http://127.0.0.1:${(server.http.address() as AddressInfo).port}`;
    return server;
  }

  get openConnections(): TestConnection[] {
    return this.connections.filter((c) => !c.closed);
  }

  /** Messages of one type received on all connections of a host, in order. */
  received(hostName: string, type: AgentMessage['type']): AgentMessage[] {
    return this.connections.filter((c) => c.hostName === hostName).flatMap((c) => c.messages.map((m) => m.msg).filter((m) => m.type === type));
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== AGENT_REGISTER_PATH) return reply(res, 404, { error: { code: 'NotFound', message: 'not found' } });
    const canned = this.registerResponses.shift();
    if (canned) return reply(res, canned.status, { error: { code: canned.code ?? 'Internal', message: 'canned' } }, canned.headers);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const parsed = RegisterRequest.safeParse(JSON.parse(Buffer.concat(chunks).toString()));
    if (!parsed.success) return reply(res, 400, { error: { code: 'ValidationFailed', message: parsed.error.message } });
    const body = parsed.data;
    try {
      await jwtVerify(body.proof, await importJWK(body.publicKey, deviceKeyAlgorithm(body.publicKey)), {
        audience: REGISTER_AUDIENCE,
        subject: body.deviceUid,
      });
    } catch (err) {
      return reply(res, 401, { error: { code: 'DeviceProofInvalid', message: (err as Error).message } });
    }
    this.registrations.push(body);
    const hostName = `host-${body.deviceUid
      .replace(/[^a-z0-9]/gi, '')
      .slice(0, 12)
      .toLowerCase()}`;
    this.hosts.set(hostName, { deviceUid: body.deviceUid, publicKey: body.publicKey });
    reply(res, 200, { hostName, uid: randomUUID(), state: 'ready', connectPath: AGENT_CONNECT_PATH });
  }

  private async onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const refuse = (status: number, code: ErrorCode) => {
      const body = JSON.stringify({ error: { code, message: `refused: ${code}` } });
      socket.end(
        `HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    if (req.url !== AGENT_CONNECT_PATH) return refuse(404, 'NotFound');
    if (this.refuseConnect) return refuse(this.refuseConnect.status, this.refuseConnect.code);
    const token = req.headers.authorization?.replace(/^Bearer /, '') ?? '';
    let hostName: string;
    try {
      const sub = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()).sub as string;
      const host = this.hosts.get(sub);
      if (!host) throw new Error('unknown host');
      const { payload } = await jwtVerify(token, await importJWK(host.publicKey, deviceKeyAlgorithm(host.publicKey)), {
        audience: CONNECT_AUDIENCE,
        subject: sub,
      });
      if (!payload.jti || this.seenJti.has(payload.jti)) return refuse(401, 'ConnectTokenReplayed');
      this.seenJti.add(payload.jti);
      hostName = sub;
    } catch {
      return refuse(401, 'ConnectTokenInvalid');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, hostName));
  }

  private onConnection(ws: WebSocket, hostName: string): void {
    const conn: TestConnection = { hostName, ws, messages: [], closed: false, send: (msg) => ws.send(JSON.stringify(msg)) };
    this.connections.push(conn);
    ws.on('close', () => {
      conn.closed = true;
    });
    ws.on('message', (data) => {
      const msg = AgentMessage.parse(JSON.parse(data.toString()));
      conn.messages.push({ at: Date.now(), msg });
      if (msg.type === 'hello' && conn.messages.length === 1) {
        conn.send({
          type: 'welcome',
          protocolVersion: PROTOCOL_VERSION,
          serverVersion: 'test',
          hostName,
          state: 'ready',
          heartbeatIntervalSeconds: this.heartbeatIntervalSeconds,
        });
        if (this.spec) conn.send({ type: 'spec', ...this.spec });
      }
    });
  }
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Polls `check` until it returns a truthy value, or throws after `timeoutMs`. */
export async function waitFor<T>(check: () => T | undefined | false | null, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
