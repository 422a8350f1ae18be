import { AGENT_REGISTER_PATH, ErrorBody, type RegisterRequest, RegisterResponse } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { Backoff, sleep } from './backoff.js';
import type { AgentConfig } from './config.js';
import type { Device } from './device/device.js';
import { type DeviceIdentity, normalizeServerUrl, type Registration } from './identity.js';
import type { AgentTiming } from './timing.js';

export interface RegisterContext {
  config: AgentConfig;
  device: Device;
  identity: DeviceIdentity;
  logger: Logger;
  agentVersion: string;
  timing: AgentTiming;
  signal: AbortSignal;
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
  const existing = ctx.identity.registrationFor(ctx.config.server);
  if (existing) return existing;
  const backoff = new Backoff({ baseMs: ctx.timing.backoffBaseMs, capMs: ctx.timing.backoffCapMs });
  while (!ctx.signal.aborted) {
    const attempt = await registerOnce(ctx, backoff);
    if (attempt.ok) return attempt.registration;
    if (!(await sleep(attempt.retryAfterMs, ctx.signal))) break;
  }
  return undefined;
}

async function registerOnce(ctx: RegisterContext, backoff: Backoff): Promise<Attempt> {
  const { config, logger, timing } = ctx;
  const url = `${normalizeServerUrl(config.server)}${AGENT_REGISTER_PATH}`;
  if (!config.token) {
    logger.error('device is not registered and no registration token is configured (--token); retrying later');
    return { ok: false, retryAfterMs: timing.slowRetryMs };
  }
  let res: Response;
  let body: unknown;
  try {
    const deviceUid = await ctx.device.deviceUid();
    const request: RegisterRequest = {
      token: config.token,
      deviceUid,
      publicKey: ctx.identity.publicKey,
      proof: await ctx.identity.signRegistrationProof(deviceUid),
      inventory: await ctx.device.inventory(),
      agentVersion: ctx.agentVersion,
      ...(config.site ? { site: config.site } : {}),
      ...(Object.keys(config.labels).length ? { labels: config.labels } : {}),
    };
    const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timing.requestTimeoutMs)]);
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request), signal });
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
    logger.warn({ url, err: (err as Error).message, retryInMs: retryAfterMs }, 'registration request failed; retrying');
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
