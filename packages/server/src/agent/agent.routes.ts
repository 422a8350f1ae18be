import {
  AGENT_CONNECT_PATH,
  AGENT_REGISTER_PATH,
  CONNECT_AUDIENCE,
  type DevicePublicKey,
  EdgeplaneError,
  parseOrThrow,
  RegisterRequest,
} from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import { findHostKeys } from '../edgehost/edgehost.repository.js';
import type { Metrics } from '../http/metrics.js';
import { pairingAgentRoutes } from '../pairing/pairing.routes.js';
import type { Db } from '../store/db.js';
import { announceWrite } from '../watch/change-bus.js';
import { type ChannelDeps, serveChannel } from './channel.js';
import type { ConnectionHub } from './connection-hub.js';
import { claimedHost, ReplayCache, verifyDeviceToken } from './device-token.js';
import { registerDevice } from './register.service.js';
import { RegistrationGate } from './registration-gate.js';

export interface AgentRouteDeps {
  db: Db;
  hub: ConnectionHub;
  metrics: Metrics;
  serverVersion: string;
  sessions?: ChannelDeps['sessions'];
  clusters?: ChannelDeps['clusters'];
  /** Registrations handled at once before 429 RateLimited (see registration-gate.ts); default 64. */
  registrationConcurrency?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    agentHost?: { name: string; publicKey: string };
  }
}

/** The two endpoints agents use: registration and the outbound channel. Neither takes an API token. */
export async function agentRoutes(app: FastifyInstance, deps: AgentRouteDeps): Promise<void> {
  const replays = new ReplayCache();
  await pairingAgentRoutes(app, { db: deps.db });

  const gate = new RegistrationGate(deps.registrationConcurrency ?? 64);
  app.post(AGENT_REGISTER_PATH, async (req, reply) => {
    const body = parseOrThrow(RegisterRequest, req.body, 'registration');
    try {
      const ran = await gate.run(() => registerDevice(deps.db, body));
      if (!ran) {
        const wait = gate.retryAfterSeconds();
        reply.header('retry-after', String(wait));
        throw new EdgeplaneError('RateLimited', `the server is handling too many registrations; retry in ${wait}s`, { retryAfterSeconds: wait });
      }
      const res = ran.value;
      deps.metrics.registrations.inc({ result: res.created ? 'created' : 'existing' });
      req.log.info({ host: res.hostName, state: res.state, created: res.created, via: res.via }, 'device registered');
      announceWrite({ kind: 'EdgeHost', name: res.hostName, type: res.created ? 'ADDED' : 'MODIFIED' });
      const { created: _c, via: _v, ...answer } = res;
      return answer;
    } catch (err) {
      deps.metrics.registrations.inc({ result: err instanceof EdgeplaneError ? err.code : 'error' });
      throw err;
    }
  });

  app.get(
    AGENT_CONNECT_PATH,
    {
      websocket: true,
      // Authenticate before the upgrade, so a refused agent gets a plain HTTP error with a code.
      preValidation: async (req) => {
        const auth = req.headers.authorization ?? '';
        const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
        if (!token) throw new EdgeplaneError('ConnectTokenInvalid', 'missing Authorization: Bearer <device-signed connect token>');
        const name = claimedHost(token);
        const host = await findHostKeys(deps.db, name);
        if (!host) throw new EdgeplaneError('ConnectTokenInvalid', 'the connect token names an unknown host');
        const keys = [host.public_key, host.pending_public_key].filter((k): k is string => !!k);
        let payload: { jti: string; exp: number } | undefined;
        let usedKey = '';
        for (const k of keys) {
          try {
            payload = await verifyDeviceToken(token, JSON.parse(k) as DevicePublicKey, CONNECT_AUDIENCE, 'ConnectTokenInvalid');
            usedKey = k;
            break;
          } catch (err) {
            if (k === keys[keys.length - 1]) throw err;
          }
        }
        if (!payload) throw new EdgeplaneError('ConnectTokenInvalid', 'connect token not verified');
        if (!replays.use(payload.jti, payload.exp)) throw new EdgeplaneError('ConnectTokenReplayed', 'this connect token was already used');
        if (host.denied) throw new EdgeplaneError('DeviceDenied', `host "${name}" is on the deny-list`);
        if (host.state === 'rejected') throw new EdgeplaneError('HostRejected', `host "${name}" was rejected by an operator`);
        req.agentHost = { name, publicKey: usedKey };
      },
    },
    (socket, req) => {
      const host = req.agentHost!;
      serveChannel({ ...deps, log: req.log }, socket, host.name, host.publicKey);
    },
  );
}
