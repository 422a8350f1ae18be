import {
  AGENT_REGISTER_PATH,
  ErrorBody,
  type PairingCredential,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  type RegisterRequest,
  RegisterResponse,
  type TpmActivationAnswer,
  TpmActivationChallenge,
} from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { Backoff, sleep } from './backoff.js';
import type { AgentConfig } from './config.js';
import type { Device } from './device/device.js';
import { reportedInventory } from './device/os-mode.js';
import { type DeviceIdentity, normalizeServerUrl, type Registration } from './identity.js';
import { obtainPairing, type PairingInfo } from './pairing/pairing-flow.js';
import type { AgentTiming } from './timing.js';
import type { ServerTrust } from './tls-trust.js';

export interface RegisterContext {
  config: AgentConfig;
  device: Device;
  identity: DeviceIdentity;
  logger: Logger;
  agentVersion: string;
  timing: AgentTiming;
  signal: AbortSignal;
  /** Register anew although identity.json holds a registration: the server no longer knows its host. */
  fresh?: boolean;
  /** At-the-edge pairing (no token, no pairing key): called with each code to show, undefined once claimed. */
  onPairing?: (info: PairingInfo | undefined) => void;
  /** Long-poll length while waiting for a claim; tests shorten it. */
  pairingPollWaitSeconds?: number;
  /** fetch trusting the configured CA file (serverTrust); default the global fetch. */
  trust?: ServerTrust;
}

/** A claimed pairing session survives failed registration attempts until the server refuses it. */
interface RegisterState {
  pairing?: PairingCredential;
  /** The answer to the server's last TPM activation challenge, sent with the next attempt. */
  activation?: TpmActivationAnswer;
}

type Attempt = { ok: true; registration: Registration } | { ok: false; retryAfterMs: number };

/**
 * Registers the device unless identity.json already holds a registration with this server (a
 * restart never registers the device as a new host). Retries until it succeeds or `signal` aborts:
 * 429 honours Retry-After, 5xx and network errors back off exponentially, other 4xx (bad, expired or
 * revoked token) retry slowly because an operator may fix the token in the meantime.
 * Resolves undefined when aborted.
 */
export async function ensureRegistered(ctx: RegisterContext): Promise<Registration | undefined> {
  const existing = ctx.fresh ? undefined : ctx.identity.registrationFor(ctx.config.server);
  if (existing) return existing;
  const backoff = new Backoff({ baseMs: ctx.timing.backoffBaseMs, capMs: ctx.timing.backoffCapMs });
  const state: RegisterState = {};
  while (!ctx.signal.aborted) {
    const attempt = await registerOnce(ctx, backoff, state);
    if (attempt.ok) return attempt.registration;
    if (!(await sleep(attempt.retryAfterMs, ctx.signal))) break;
  }
  return undefined;
}

/**
 * The one credential this attempt presents: the pre-registration pairing key, else the token, else a
 * pairing session an operator claimed (shows a code and waits for the claim first).
 */
async function credentialFor(ctx: RegisterContext, state: RegisterState): Promise<Pick<RegisterRequest, 'token' | 'pairingKey' | 'pairing'> | undefined> {
  if (ctx.config.pairingKey) return { pairingKey: ctx.config.pairingKey };
  if (ctx.config.token) return { token: ctx.config.token };
  state.pairing ??= await obtainPairing({
    server: ctx.config.server,
    device: ctx.device,
    identity: ctx.identity,
    logger: ctx.logger,
    agentVersion: ctx.agentVersion,
    timing: ctx.timing,
    signal: ctx.signal,
    onPairing: ctx.onPairing,
    pollWaitSeconds: ctx.pairingPollWaitSeconds,
    fetch: ctx.trust?.fetch,
  });
  return state.pairing ? { pairing: state.pairing } : undefined;
}

async function registerOnce(ctx: RegisterContext, backoff: Backoff, state: RegisterState): Promise<Attempt> {
  const { config, logger, timing } = ctx;
  const url = `${normalizeServerUrl(config.server)}${AGENT_REGISTER_PATH}`;
  const credential = await credentialFor(ctx, state);
  if (!credential) return { ok: false, retryAfterMs: 0 }; // aborted while pairing
  let res: Response;
  let body: unknown;
  const claim = ctx.identity.claim;
  const answered = state.activation;
  state.activation = undefined;
  try {
    const deviceUid = await ctx.device.deviceUid();
    const request: RegisterRequest = {
      ...credential,
      deviceUid,
      publicKey: ctx.identity.publicKey,
      ...(claim ? { identity: claim.kind === 'tpm' && answered ? { ...claim, activation: answered } : claim } : {}),
      proof: await ctx.identity.signRegistrationProof(deviceUid),
      inventory: await reportedInventory(ctx.device),
      agentVersion: ctx.agentVersion,
      ...(config.site ? { site: config.site } : {}),
      ...(Object.keys(config.labels).length ? { labels: config.labels } : {}),
    };
    const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timing.requestTimeoutMs)]);
    res = await (ctx.trust?.fetch ?? fetch)(url, {
      method: 'POST',
      // A server of another protocol major refuses with ProtocolVersionUnsupported, naming both versions.
      headers: { 'content-type': 'application/json', [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) },
      body: JSON.stringify(request),
      signal,
    });
    body = await res.json().catch(() => undefined);
    if (res.ok) {
      const parsed = RegisterResponse.safeParse(body);
      if (!parsed.success) {
        logger.error({ url, issues: parsed.error.issues }, 'server sent an invalid registration response; retrying');
        return { ok: false, retryAfterMs: backoff.next() };
      }
      const r = parsed.data;
      const registration = await ctx.identity.saveRegistration({
        server: config.server,
        hostName: r.hostName,
        uid: r.uid,
        deviceUid,
        connectPath: r.connectPath,
        state: r.state,
      });
      logger.info({ hostName: r.hostName, state: r.state }, 'registered');
      return { ok: true, registration };
    }
  } catch (err) {
    if (ctx.signal.aborted) return { ok: false, retryAfterMs: 0 };
    const retryAfterMs = backoff.next();
    // fetch says only "fetch failed"; the cause says why (refused, certificate not trusted, ...).
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    logger.warn(
      { url, err: cause ? `${(err as Error).message}: ${cause}` : (err as Error).message, retryInMs: retryAfterMs },
      'registration request failed; retrying',
    );
    return { ok: false, retryAfterMs };
  }

  const error = ErrorBody.safeParse(body);
  const code = error.success ? error.data.error.code : undefined;
  const message = error.success ? error.data.error.message : undefined;
  if (res.status === 429) {
    const retryAfterMs = retryAfterHeaderMs(res.headers.get('retry-after')) ?? backoff.next();
    logger.warn({ status: res.status, code, retryInMs: retryAfterMs }, 'registration rate limited; retrying');
    return { ok: false, retryAfterMs };
  }
  if (res.status >= 500) {
    const retryAfterMs = backoff.next();
    logger.warn({ status: res.status, code, message, retryInMs: retryAfterMs }, 'registration failed on the server; retrying');
    return { ok: false, retryAfterMs };
  }
  if (code === 'TpmActivationRequired' && error.success) {
    // The server asks the TPM to prove it holds this key: activate its credential and answer at once.
    // A refused answer comes back with a fresh challenge; that one is answered after a back-off.
    const challenge = TpmActivationChallenge.safeParse(error.data.error.details);
    if (challenge.success)
      try {
        const secret = await ctx.identity.activateCredential(challenge.data.credential);
        state.activation = { challenge: challenge.data.challenge, secret };
        if (answered) logger.warn({ code, message }, 'the server refused the TPM activation answer; answering its new challenge');
        return { ok: false, retryAfterMs: answered ? backoff.next() : 0 };
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'the TPM could not activate the credential the server sent for the identity key');
        return { ok: false, retryAfterMs: Math.max(timing.slowRetryMs, backoff.next()) };
      }
  }
  if (code === 'PairingInvalid' && state.pairing) {
    // The claimed session is gone (expired or used): pair again with a fresh code right away.
    state.pairing = undefined;
    logger.warn({ code, message }, 'pairing session refused; starting a new pairing');
    return { ok: false, retryAfterMs: backoff.next() };
  }
  const retryAfterMs = Math.max(timing.slowRetryMs, backoff.next());
  logger.error(
    { status: res.status, code, message, retryInMs: retryAfterMs },
    `registration refused: ${code ?? `HTTP ${res.status}`}${message ? `: ${message}` : ''}`,
  );
  return { ok: false, retryAfterMs };
}

/** Retry-After is either delay-seconds or an HTTP date. */
export function retryAfterHeaderMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
