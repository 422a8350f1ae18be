import { EdgeplaneError, findKind, type Role, WATCH_BEARER_PREFIX, WATCH_PROTOCOL, type WatchMessage } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { can } from '../http/authz.js';
import type { ResourceService } from '../resource/resource.service.js';
import type { Db } from '../store/db.js';
import { authenticate } from '../user/api-token.service.js';
import { DEFAULT_LIMITS, type SubscriberLimits, WatchSubscriber } from './subscriber.js';
import type { WatchHub } from './watch-hub.js';

export const WATCH_PATH = '/api/v1/watch';

export interface WatchRouteDeps {
  db: Db;
  watch: WatchHub;
  services: () => ResourceService[];
  limits?: SubscriberLimits;
  /** WebSocket ping interval, so idle watches survive proxies and dead peers are noticed. */
  pingIntervalMs?: number;
}

/** The API token from `Authorization: Bearer` or, for browsers, the `bearer.<token>` subprotocol. */
function tokenOf(req: FastifyRequest): string {
  const auth = req.headers.authorization ?? '';
  if (auth.startsWith('Bearer ')) return auth.slice(7).trim();
  const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim());
  const bearer = protocols.find((p) => p.startsWith(WATCH_BEARER_PREFIX));
  if (bearer) return bearer.slice(WATCH_BEARER_PREFIX.length);
  throw new EdgeplaneError('Unauthenticated', `missing Authorization: Bearer <API token> (or WebSocket subprotocol ${WATCH_BEARER_PREFIX}<token>)`);
}

/** The kinds to watch: `?kinds=edgehosts,events`; default every kind the caller may list. */
function kindsOf(query: Record<string, string | undefined>, role: Role, services: ResourceService[]): string[] {
  if (!query.kinds) return services.filter((s) => can(role, `${s.info.plural}:list`)).map((s) => s.info.kind);
  const kinds: string[] = [];
  for (const part of query.kinds.split(',')) {
    const info = findKind(part.trim());
    const svc = info && services.find((s) => s.info.kind === info.kind);
    if (!svc) throw new EdgeplaneError('UnknownKind', `unknown resource type "${part}"`, { known: services.map((s) => s.info.plural) });
    if (!can(role, `${svc.info.plural}:list`))
      throw new EdgeplaneError('Forbidden', `role "${role}" may not list ${svc.info.plural}`, { permission: `${svc.info.plural}:list`, role });
    kinds.push(svc.info.kind);
  }
  return kinds;
}

/** GET /api/v1/watch (WebSocket): ADDED/MODIFIED/DELETED for the chosen kinds, RESYNC when a client falls behind. */
export async function watchRoutes(app: FastifyInstance, deps: WatchRouteDeps): Promise<void> {
  const pingMs = deps.pingIntervalMs ?? 30_000;
  app.get<{ Querystring: Record<string, string | undefined> }>(
    WATCH_PATH,
    {
      websocket: true,
      // Authenticate and validate before the upgrade, so a refused client gets a plain HTTP error with a code.
      preValidation: async (req) => {
        req.caller = await authenticate(deps.db, tokenOf(req));
        (req as FastifyRequest & { watchKinds?: string[] }).watchKinds = kindsOf(req.query, req.caller.role, deps.services());
      },
    },
    (socket, req) => {
      const kinds = (req as FastifyRequest & { watchKinds?: string[] }).watchKinds ?? [];
      const sub = new WatchSubscriber(socket, new Set(kinds), deps.limits ?? DEFAULT_LIMITS);
      const remove = deps.watch.add(sub);
      let alive = true;
      const ping = setInterval(() => {
        if (!alive) return socket.terminate();
        alive = false;
        socket.ping();
      }, pingMs).unref();
      socket.on('pong', () => {
        alive = true;
      });
      // Watches are one-way; anything a client sends is ignored.
      socket.on('close', () => {
        clearInterval(ping);
        remove();
      });
      req.log.debug({ user: req.caller?.user, kinds }, 'watch started');
      sub.sendNow({ type: 'READY', kinds } satisfies WatchMessage);
    },
  );
}

/** Lets ws pick our protocol name when a browser also offers its bearer token as a subprotocol. */
export function selectWatchProtocol(protocols: Set<string>): string | false {
  if (protocols.has(WATCH_PROTOCOL)) return WATCH_PROTOCOL;
  // Never echo a bearer token back as the selected protocol.
  const other = [...protocols].find((p) => !p.startsWith(WATCH_BEARER_PREFIX));
  return other ?? false;
}
