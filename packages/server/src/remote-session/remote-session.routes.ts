import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSessionRequest, DEFAULT_PROJECT, EdgeplaneError, parseOrThrow } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type WebSocket from 'ws';
import { appendAudit } from '../audit/audit.service.js';
import { edgeHosts } from '../edgehost/edgehost.service.js';
import { requireRunCommands } from '../http/authz.js';
import { insertRow } from '../resource/resource.repository.js';
import { hashSecret } from '../resource/secrets.js';
import type { Db } from '../store/db.js';
import { authenticate } from '../user/api-token.service.js';
import { remoteSessions, sessionReplica } from './remote-session.service.js';
import type { SessionProxy } from './replica-proxy.js';
import type { SessionBroker } from './session-broker.js';

export interface SessionRouteDeps {
  db: Db;
  broker: SessionBroker;
  recordingsDir: string;
  /** The server's public URL; session URLs use it instead of the request's Host header. */
  publicUrl?: string;
  /** Other replicas (PostgreSQL): sessions of hosts whose agent is connected to another replica go there. */
  proxy: SessionProxy;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The attach WebSocket opened on the replica serving the session (proxied attach). */
    sessionUpstream?: WebSocket;
  }
}

/** Passes a peer replica's answer on unchanged (status, JSON or recording body). */
async function relayAnswer(reply: FastifyReply, res: Response): Promise<FastifyReply> {
  reply.status(res.status);
  for (const name of ['content-type', 'retry-after']) {
    const value = res.headers.get(name);
    if (value) reply.header(name, value);
  }
  return reply.send(Buffer.from(await res.arrayBuffer()));
}

const TICKET_TTL_MS = 60_000;
export const attachPath = (id: string) => `/api/v1/remotesessions/${id}/attach`;

/** Remote sessions: create on a host, attach (operator WebSocket), terminate, recording. */
export async function remoteSessionRoutes(app: FastifyInstance, deps: SessionRouteDeps): Promise<void> {
  const { db, broker, proxy } = deps;
  /** One-time attach tickets for browsers, which cannot set an Authorization header on a WebSocket. */
  const tickets = new Map<string, { id: string; expires: number }>();

  app.addHook('onRequest', async (req) => {
    const q = req.query as { ticket?: string };
    if (req.url.split('?')[0].endsWith('/attach') && q.ticket) return; // checked by the attach route
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ')) throw new EdgeplaneError('Unauthenticated', 'missing Authorization: Bearer <API token>');
    req.caller = await authenticate(db, auth.slice(7).trim());
  });

  const sessionOf = async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const caller = req.caller!;
    await requireRunCommands(db, caller, 'a remote session');
    const row = await remoteSessions.getRow(db, req.params.id);
    if (caller.role !== 'admin' && row.user_name !== caller.user)
      throw new EdgeplaneError('Forbidden', `remote session "${row.name}" belongs to another user`, { permission: 'remotesessions:own' });
    return row;
  };

  app.post<{ Params: { name: string } }>('/api/v1/edgehosts/:name/sessions', async (req, reply) => {
    const caller = req.caller!;
    await requireRunCommands(db, caller, 'a remote session');
    const body = parseOrThrow(CreateSessionRequest, req.body ?? {}, 'session request');
    const host = req.params.name;
    const hostRow = await edgeHosts.getRow(db, host);
    // Approved hosts only: a cluster member (in-use) is exactly where troubleshooting is needed.
    if (hostRow.state !== 'ready' && hostRow.state !== 'in-use')
      throw new EdgeplaneError('InvalidState', `host "${host}" is ${hostRow.state}; remote sessions need an approved host (ready or in-use)`);
    // The public base of session links: this server's, or the one the proxying replica was reached at.
    const base = proxy.forwardedBase(req.headers) ?? deps.publicUrl?.replace(/\/+$/, '') ?? `${req.protocol}://${req.host}`;
    if (!broker.isConnected(host)) {
      // Another replica holds the agent: it serves the session (a proxied request is never proxied again).
      const peer = proxy.fromPeer(req.headers) ? undefined : await proxy.peerForHost(host);
      if (peer) return relayAnswer(reply, await proxy.forward(peer, { method: 'POST', url: req.url, headers: req.headers, body: req.body }, base));
      throw new EdgeplaneError('HostOffline', `host "${host}" is not connected`);
    }
    const id = `rs-${randomBytes(6).toString('hex')}`;
    const now = new Date();
    const expiresAt = new Date(now.getTime() + body.ttlSeconds * 1000).toISOString();
    const status = { phase: 'pending', url: attachPath(id), expiresAt };
    const spec = { host, user: caller.user, ...body };
    const t = now.toISOString();
    await db.transaction().execute(async (trx) => {
      await insertRow(trx, 'remote_sessions', {
        name: id,
        uid: randomBytes(16).toString('hex'),
        project: hostRow.project ?? DEFAULT_PROJECT,
        labels: JSON.stringify({ 'edgeplane.io/host': host }),
        annotations: '{}',
        generation: 1,
        resource_version: 1,
        created_at: t,
        updated_at: t,
        spec: JSON.stringify(spec),
        status: JSON.stringify(status),
        host,
        user_name: caller.user,
        phase: 'pending',
        replica: proxy.replicaId,
      });
      // In the same transaction: a session exists only with the audit entry that says who opened it and why.
      await appendAudit(trx, {
        actor: caller.user,
        action: 'session.start',
        target: `edgehosts/${host}`,
        reason: body.reason,
        details: {
          session: id,
          kind: body.kind,
          ttlSeconds: body.ttlSeconds,
          ...(body.command ? { command: body.command } : {}),
          ...(body.logs ? { logs: body.logs } : {}),
        },
      });
    });
    broker.add(id, host, caller.user, body, status);
    const ticket = `epat_${randomBytes(24).toString('base64url')}`;
    tickets.set(hashSecret(ticket), { id, expires: Date.now() + TICKET_TTL_MS });
    for (const [k, v] of tickets) if (v.expires < Date.now()) tickets.delete(k);
    req.log.info({ session: id, host, kind: body.kind, user: caller.user }, 'remote session created');
    const obj = await remoteSessions.get(db, id);
    const wsBase = base.replace(/^http/, 'ws');
    return reply.status(201).send({ ...obj, status: { ...obj.status, url: `${wsBase}${attachPath(id)}`, attachTicket: ticket } });
  });

  app.get<{ Params: { id: string }; Querystring: { ticket?: string } }>(
    '/api/v1/remotesessions/:id/attach',
    {
      websocket: true,
      // Refuse before the upgrade, so a client sees a plain HTTP error with a code.
      preValidation: async (req) => {
        // Served by another replica (it holds the host's agent): the operator is relayed there, and
        // authenticated there, ticket or token, exactly as if it had connected to it.
        if (!broker.get(req.params.id) && !proxy.fromPeer(req.headers)) {
          const peer = await proxy.peerForSession(await sessionReplica(db, req.params.id));
          if (peer) {
            req.sessionUpstream = await proxy.openAttach(peer, req.url, req.headers.authorization);
            return;
          }
        }
        if (req.query.ticket) {
          const key = hashSecret(req.query.ticket);
          const t = tickets.get(key);
          tickets.delete(key);
          if (!t || t.id !== req.params.id || t.expires < Date.now())
            throw new EdgeplaneError('Unauthenticated', 'the attach ticket is not valid (one use, 60 s)');
        } else await sessionOf(req);
        const s = broker.get(req.params.id);
        if (!s || s.operator || s.phase !== 'pending')
          throw new EdgeplaneError('SessionEnded', `remote session "${req.params.id}" has ended or is already attached`);
      },
    },
    (socket, req) => {
      if (req.sessionUpstream) return proxy.relay(socket, req.sessionUpstream);
      const s = broker.get(req.params.id);
      try {
        if (!s) throw new EdgeplaneError('SessionEnded', `remote session "${req.params.id}" has ended`);
        broker.attach(s, socket);
      } catch (err) {
        socket.send(JSON.stringify({ type: 'error', code: (err as EdgeplaneError).code ?? 'Internal', message: (err as Error).message }));
        socket.close(1008, 'cannot attach');
      }
    },
  );

  app.post<{ Params: { id: string } }>('/api/v1/remotesessions/:id/terminate', async (req, reply) => {
    const row = await sessionOf(req);
    const s = broker.get(row.name);
    if (s) await broker.end(s, { reason: 'terminated', message: `terminated by ${req.caller!.user}` });
    else if (row.phase === 'pending' || row.phase === 'active') {
      const peer = proxy.fromPeer(req.headers) ? undefined : await proxy.peerForSession(row.replica as string | null);
      if (peer) return relayAnswer(reply, await proxy.forward(peer, { method: 'POST', url: req.url, headers: req.headers }));
    }
    // Terminating an ended session is a no-op: scripts retry.
    return remoteSessions.get(db, row.name);
  });

  app.get<{ Params: { id: string } }>('/api/v1/remotesessions/:id/recording', async (req, reply) => {
    const row = await sessionOf(req);
    const file = join(deps.recordingsDir, `${row.name}.cast`);
    // Recordings stay in the data dir of the replica that served the session.
    if (!existsSync(file) && !proxy.fromPeer(req.headers)) {
      const peer = await proxy.peerForSession(row.replica as string | null);
      if (peer) return relayAnswer(reply, await proxy.forward(peer, { method: 'GET', url: req.url, headers: req.headers }));
    }
    if (!existsSync(file)) throw new EdgeplaneError('NotFound', `no recording for remote session "${row.name}" on this server`);
    reply.header('content-type', 'application/x-asciicast');
    return reply.send(createReadStream(file));
  });
}
