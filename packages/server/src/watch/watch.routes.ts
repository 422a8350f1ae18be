import { EdgeplaneError, findKind, type Role, WATCH_BEARER_PREFIX, WATCH_PROTOCOL, type WatchMessage } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { can } from '../http/authz.js';
import type { ResourceService } from '../resource/resource.service.js';
import { hashSecret } from '../resource/secrets.js';
import type { Db } from '../store/db.js';
import { authenticate } from '../user/api-token.service.js';
import { DEFAULT_LIMITS, type SubscriberLimits, type WatchOwner, WatchSubscriber } from './subscriber.js';
import type { WatchHub } from './watch-hub.js';

export const WATCH_PATH = '/api/v1/watch';

export interface WatchRouteDeps {
  db: Db;
  watch: WatchHub;
  services: () => ResourceService[];
  limits?: SubscriberLimits;
  /** WebSocket ping interval, so idle watches survive proxies and dead peers are noticed. */
  pingIntervalMs?: number;
  /** Open watches one API token may hold; more are refused (429 RateLimited, or close code 4429). Default 20. */
  maxWatchesPerToken?: number;
}

export const DEFAULT_MAX_WATCHES_PER_TOKEN = 20;
/** Close code of a watch refused because its token already holds the maximum number of watches. */
export const WATCH_CLOSE_TOO_MANY = 4429;
type WatchRequest = FastifyRequest & { watchKinds?: string[]; watchOwner?: WatchOwner };

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
  const maxPerToken = deps.maxWatchesPerToken ?? DEFAULT_MAX_WATCHES_PER_TOKEN;
  const tooMany = (tokenName: string) => `API token "${tokenName}" already holds ${maxPerToken} watches; close one first`;
  app.get<{ Querystring: Record<string, string | undefined> }>(
    WATCH_PATH,
    {
      websocket: true,
      // Authenticate and validate before the upgrade, so a refused client gets a plain HTTP error with a code.
      preValidation: async (req, reply) => {
        const secret = tokenOf(req);
        const cred = await authenticate(deps.db, secret);
        req.caller = cred;
        (req as WatchRequest).watchKinds = kindsOf(req.query, cred.role, deps.services());
        (req as WatchRequest).watchOwner = { ...cred, tokenHash: hashSecret(secret) };
        if (deps.watch.countForToken(cred.tokenName) >= maxPerToken) {
          reply.header('retry-after', '10');
          throw new EdgeplaneError('RateLimited', tooMany(cred.tokenName), { limit: maxPerToken });
        }
      },
    },
    (socket, req) => {
      const kinds = (req as WatchRequest).watchKinds ?? [];
      const owner = (req as WatchRequest).watchOwner!;
      // Counted again here, where adding is synchronous: parallel upgrades all passed the check above.
      if (deps.watch.countForToken(owner.tokenName) >= maxPerToken) {
        socket.close(WATCH_CLOSE_TOO_MANY, tooMany(owner.tokenName).slice(0, 123));
        return;
      }
      const sub = new WatchSubscriber(socket, new Set(kinds), deps.limits ?? DEFAULT_LIMITS, owner);
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
