import { randomBytes } from 'node:crypto';
import {
  AGENT_CONNECT_PATH,
  AGENT_REGISTER_PATH,
  CONNECT_AUDIENCE,
  type DevicePublicKey,
  EdgeplaneError,
  parseOrThrow,
  RegisterRequest,
} from '@edgeplane/protocol';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { SecretBox } from '../cluster/secret-box.js';
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
import { TpmActivation } from './tpm-activation.js';

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

/** Verifies a connect token with one stored key (JSON JWK); a pre-registered host has none yet. */
function verifyWithKey(token: string, storedKey: string) {
  if (!storedKey) return Promise.reject(new EdgeplaneError('ConnectTokenInvalid', 'the host has no device key yet: register first'));
  return verifyDeviceToken(token, JSON.parse(storedKey) as DevicePublicKey, CONNECT_AUDIENCE, 'ConnectTokenInvalid');
}

/** The two endpoints agents use: registration and the outbound channel. Neither takes an API token. */
export async function agentRoutes(app: FastifyInstance, deps: AgentRouteDeps): Promise<void> {
  const replays = new ReplayCache(deps.db);
  await pairingAgentRoutes(app, { db: deps.db });

  const gate = new RegistrationGate(deps.registrationConcurrency ?? 64);
  // Challenges are sealed with the server's secret key (shared by replicas); an app built without the
  // cluster controller (some tests) seals with a key of its own process.
  const tpm = new TpmActivation(deps.clusters?.secrets ?? new SecretBox(randomBytes(32)));
  const refuse = (reply: FastifyReply) => {
    const wait = gate.retryAfterSeconds();
    reply.header('retry-after', String(wait));
    return new EdgeplaneError('RateLimited', `the server is handling too many registrations; retry in ${wait}s`, { retryAfterSeconds: wait });
  };
  app.post(
    AGENT_REGISTER_PATH,
    {
      // In a storm most requests meet a full gate: refuse those before their body (inventory, proof)
      // is read and validated, so a refusal costs little of the CPU the registrations need. A request
      // that passes here may still be refused by gate.run below.
      onRequest: async (_req, reply) => {
        if (!gate.saturated) return;
        gate.refuse();
        deps.metrics.registrations.inc({ result: 'RateLimited' });
        throw refuse(reply);
      },
    },
    async (req, reply) => {
      const body = parseOrThrow(RegisterRequest, req.body, 'registration');
      try {
        const ran = await gate.run(() => registerDevice(deps.db, body, tpm));
        if (!ran) throw refuse(reply);
        const res = ran.value;
        deps.metrics.registrations.inc({ result: res.created ? 'created' : 'existing' });
        req.log.info({ host: res.hostName, state: res.state, created: res.created, via: res.via }, 'device registered');
        announceWrite(deps.db, { kind: 'EdgeHost', name: res.hostName, type: res.created ? 'ADDED' : 'MODIFIED' });
        const { created: _c, via: _v, ...answer } = res;
        return answer;
      } catch (err) {
        deps.metrics.registrations.inc({ result: err instanceof EdgeplaneError ? err.code : 'error' });
        throw err;
      }
    },
  );

  app.get(
    AGENT_CONNECT_PATH,
    {
      websocket: true,
      // Authenticate before the upgrade, so a refused agent gets a plain HTTP error with a code.
      preValidation: async (req, reply) => {
        const auth = req.headers.authorization ?? '';
        const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
        if (!token) throw new EdgeplaneError('ConnectTokenInvalid', 'missing Authorization: Bearer <device-signed connect token>');
        const name = claimedHost(token);
        // A draining replica (graceful shutdown) takes no new agents; the load balancer has another.
        if (deps.hub.draining) {
          reply.header('retry-after', '1');
          throw new EdgeplaneError('NotReady', 'this server is draining for shutdown; connect to another replica', { retryAfterSeconds: 1 });
        }
        // Beyond the descriptor budget: refused before any store work, retryable (another replica behind the balancer may take it).
        if (deps.hub.full(name)) {
          const wait = 5 + Math.floor(Math.random() * 10);
          reply.header('retry-after', String(wait));
          throw new EdgeplaneError(
            'AgentCapacityReached',
            `this server holds as many agent channels as its descriptor budget allows (${deps.hub.options.maxChannels}); retry in ${wait}s`,
            {
              retryAfterSeconds: wait,
            },
          );
        }
        const host = await findHostKeys(deps.db, name);
        // Its own code: the agent of a deleted host registers again with its credential (agent.ts).
        if (!host) throw new EdgeplaneError('HostUnknown', `the connect token names a host this server does not know ("${name}"); register again`);
        // Only the key the host is bound to opens the channel. A key waiting for approval (a
        // re-registration request) is told so and gets nothing else: no spec, no status writes.
        const payload = await verifyWithKey(token, host.public_key).catch(async (err) => {
          if (
            host.pending_public_key &&
            (await verifyWithKey(token, host.pending_public_key).then(
              () => true,
              () => false,
            ))
          )
            throw new EdgeplaneError('DeviceKeyPending', `this device key waits for an operator's approval; host "${name}" is still bound to its current key`);
          throw err;
        });
        if (!(await replays.use(payload.jti, payload.exp))) throw new EdgeplaneError('ConnectTokenReplayed', 'this connect token was already used');
        if (host.denied) throw new EdgeplaneError('DeviceDenied', `host "${name}" is on the deny-list`);
        if (host.state === 'rejected') throw new EdgeplaneError('HostRejected', `host "${name}" was rejected by an operator`);
        req.agentHost = { name, publicKey: host.public_key };
      },
    },
    (socket, req) => {
      const host = req.agentHost!;
      serveChannel({ ...deps, log: req.log }, socket, host.name, host.publicKey);
    },
  );
}
