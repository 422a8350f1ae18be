import {
  AGENT_PAIRINGS_PATH,
  EdgeplaneError,
  PAIRING_MAX_WAIT_SECONDS,
  PAIRING_START_MAX_BODY_BYTES,
  PairingClaimRequest,
  PairingCode,
  PairingStartRequest,
  parseOrThrow,
} from '@edgeplane/protocol';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import type { Db } from '../store/db.js';
import { claimPairing, pollPairing, startPairing } from './pairing.service.js';
import { sourceKey } from './pairing-sessions.js';
import { type Limiter, rateLimiterFor } from './rate-limiter.js';

export interface PairingLimits {
  /** Claim attempts per source IP: burst, then one per `ipRefillSeconds`. */
  claimsPerIp: number;
  ipRefillSeconds: number;
  /** Claim attempts per code (wrong or not), so one code cannot be hammered from many sources. */
  claimsPerCode: number;
  codeRefillSeconds: number;
  /** Pairing sessions an agent source IP may open: burst, then one per `startRefillSeconds`. */
  startsPerIp: number;
  startRefillSeconds: number;
}

export const DEFAULT_PAIRING_LIMITS: PairingLimits = {
  claimsPerIp: 10,
  ipRefillSeconds: 6,
  claimsPerCode: 5,
  codeRefillSeconds: 60,
  startsPerIp: 30,
  startRefillSeconds: 2,
};

async function limit(limiter: Limiter, key: string, reply: FastifyReply, what: string): Promise<void> {
  const wait = await limiter.take(key);
  if (wait === 0) return;
  reply.header('retry-after', String(wait));
  throw new EdgeplaneError('RateLimited', `too many ${what}; retry in ${wait}s`, { retryAfterSeconds: wait });
}

/** Every RateLimited answer of these routes carries Retry-After, also those thrown by the service. */
function retryAfterHeader(app: FastifyInstance): void {
  app.addHook('onError', async (_req, reply, err) => {
    const wait = err instanceof EdgeplaneError && err.code === 'RateLimited' ? err.details?.retryAfterSeconds : undefined;
    if (typeof wait === 'number' && !reply.hasHeader('retry-after')) reply.header('retry-after', String(wait));
  });
}

/**
 * Agent side, no API token: open a session (the proof binds it to the device key) and poll it.
 * Shares `app.pairings` (caps, held polls) with the claim route of the same server.
 */
export async function pairingAgentRoutes(app: FastifyInstance, deps: { db: Db; limits?: Partial<PairingLimits> }): Promise<void> {
  const limits = { ...DEFAULT_PAIRING_LIMITS, ...deps.limits };
  const starts = rateLimiterFor(deps.db, 'pairing-starts', limits.startsPerIp, 1 / limits.startRefillSeconds);
  const sessions = app.pairings;
  retryAfterHeader(app);

  app.post(
    AGENT_PAIRINGS_PATH,
    {
      // Anyone may call this: a small body limit, and the rate limit before the body is even read.
      bodyLimit: PAIRING_START_MAX_BODY_BYTES,
      onRequest: async (req, reply) => limit(starts, sourceKey(req.ip), reply, 'pairing requests from this address'),
    },
    async (req, reply) => {
      const body = parseOrThrow(PairingStartRequest, req.body, 'pairing request');
      const res = await startPairing(deps.db, body, sourceKey(req.ip), sessions);
      req.log.info({ pairing: res.id, deviceUid: body.deviceUid, expiresAt: res.expiresAt }, 'pairing session opened');
      return reply.status(201).send(res);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { waitSeconds?: string } }>(`${AGENT_PAIRINGS_PATH}/:id`, async (req, reply) => {
    const auth = req.headers.authorization ?? '';
    const secret = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
    if (!secret) throw new EdgeplaneError('PairingInvalid', 'missing Authorization: Bearer <pollSecret>');
    const wait = Math.min(Math.max(Number(req.query.waitSeconds ?? 0) || 0, 0), PAIRING_MAX_WAIT_SECONDS);
    const gone = new AbortController();
    // The response closing before we answered means the agent went away: stop waiting for it.
    reply.raw.once('close', () => gone.abort());
    return pollPairing(deps.db, req.params.id, secret, wait, sessions, AbortSignal.any([gone.signal, sessions.closed]));
  });
}

/** Operator side: claim a code shown by a device (permission edgehosts:create), rate-limited per source and per code. */
export async function pairingApiRoutes(app: FastifyInstance, deps: { db: Db; limits?: Partial<PairingLimits> }): Promise<void> {
  const limits = { ...DEFAULT_PAIRING_LIMITS, ...deps.limits };
  const sessions = app.pairings;
  const perIp = rateLimiterFor(deps.db, 'pairing-claims-ip', limits.claimsPerIp, 1 / limits.ipRefillSeconds);
  const perCode = rateLimiterFor(deps.db, 'pairing-claims-code', limits.claimsPerCode, 1 / limits.codeRefillSeconds);
  installAuth(app, deps.db);

  app.post<{ Params: { code: string } }>('/api/v1/pairings/:code/claim', async (req, reply) => {
    const caller = requirePermission(req, 'edgehosts:create');
    await limit(perIp, req.ip, reply, 'claim attempts from this address');
    const parsed = PairingCode.safeParse(req.params.code);
    // A malformed code is just another wrong code: same answer, so the shape of codes leaks nothing new.
    if (!parsed.success) throw new EdgeplaneError('PairingCodeInvalid', 'no pending pairing has this code');
    await limit(perCode, parsed.data, reply, 'claim attempts for this code');
    const body = parseOrThrow(PairingClaimRequest, req.body ?? {}, 'claim');
    const res = await claimPairing(deps.db, parsed.data, body, caller.user, (id) => sessions.changed(id));
    req.log.info({ code: res.code, deviceUid: res.deviceUid, project: res.project, user: caller.user }, 'pairing code claimed');
    return res;
  });
}
