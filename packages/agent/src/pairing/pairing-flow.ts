import {
  AGENT_PAIRINGS_PATH,
  claimUrl,
  ErrorBody,
  PAIRING_MAX_WAIT_SECONDS,
  type PairingCredential,
  PairingPollResponse,
  type PairingStartRequest,
  PairingStartResponse,
} from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { Backoff, sleep } from '../backoff.js';
import type { Device } from '../device/device.js';
import { reportedInventory } from '../device/os-mode.js';
import { type DeviceIdentity, normalizeServerUrl } from '../identity.js';
import type { AgentTiming } from '../timing.js';

/** What the device shows so an operator can claim it. */
export interface PairingInfo {
  code: string;
  /** Console page that claims this code; the QR encodes it. */
  claimUrl: string;
  expiresAt: string;
  deviceUid: string;
}

export interface PairingFlowContext {
  server: string;
  device: Device;
  identity: DeviceIdentity;
  logger: Logger;
  agentVersion: string;
  timing: AgentTiming;
  signal: AbortSignal;
  /** Called with every new code (a fresh one after each expiry), and with undefined once claimed. */
  onPairing?: (info: PairingInfo | undefined) => void;
  /** Long-poll length; tests shorten it. */
  pollWaitSeconds?: number;
  /** fetch trusting the configured CA file; default the global fetch. */
  fetch?: typeof globalThis.fetch;
}

/**
 * At-the-edge pairing: opens a pairing session, shows its code, and waits (long-polling) until an
 * operator claims it; an expired code is replaced by a fresh one. Resolves with the credential that
 * completes registration, or undefined when aborted.
 */
export async function obtainPairing(ctx: PairingFlowContext): Promise<PairingCredential | undefined> {
  const base = normalizeServerUrl(ctx.server);
  const backoff = new Backoff({ baseMs: ctx.timing.backoffBaseMs, capMs: ctx.timing.backoffCapMs });
  while (!ctx.signal.aborted) {
    const session = await startSession(ctx, base).catch((err: Error & { retryAfterMs?: number }) => {
      const retryAfterMs = err.retryAfterMs ?? backoff.next();
      ctx.logger.warn({ err: err.message, retryInMs: retryAfterMs }, 'cannot open a pairing session; retrying');
      return retryAfterMs;
    });
    if (typeof session === 'number') {
      if (!(await sleep(session, ctx.signal))) return undefined;
      continue;
    }
    backoff.reset();
    const info: PairingInfo = { code: session.code, claimUrl: claimUrl(base, session.code), expiresAt: session.expiresAt, deviceUid: session.deviceUid };
    ctx.logger.info(
      { code: info.code, expiresAt: info.expiresAt, claimUrl: info.claimUrl },
      `pairing code ${info.code}: claim it in the console or with "edgeplane claim ${info.code}"`,
    );
    ctx.onPairing?.(info);
    const outcome = await waitForClaim(ctx, base, session, backoff);
    if (outcome === 'claimed') {
      ctx.onPairing?.(undefined);
      ctx.logger.info({ code: info.code }, 'pairing code claimed; completing registration');
      return { id: session.id, secret: session.pollSecret };
    }
    if (outcome === 'aborted') return undefined;
    ctx.logger.info({ code: info.code }, 'pairing code expired or was dropped; showing a new one');
  }
  return undefined;
}

async function startSession(ctx: PairingFlowContext, base: string): Promise<PairingStartResponse & { deviceUid: string }> {
  const deviceUid = await ctx.device.deviceUid();
  const body: PairingStartRequest = {
    deviceUid,
    publicKey: ctx.identity.publicKey,
    proof: await ctx.identity.signRegistrationProof(deviceUid),
    inventory: await reportedInventory(ctx.device),
    agentVersion: ctx.agentVersion,
  };
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.timing.requestTimeoutMs)]);
  const res = await (ctx.fetch ?? fetch)(`${base}${AGENT_PAIRINGS_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
  const json = await res.json().catch(() => undefined);
  if (res.ok) return { ...PairingStartResponse.parse(json), deviceUid };
  const err = ErrorBody.safeParse(json);
  const e = new Error(err.success ? `${err.data.error.code}: ${err.data.error.message}` : `HTTP ${res.status}`) as Error & { retryAfterMs?: number };
  const retryAfter = Number(res.headers.get('retry-after'));
  if (res.status === 429 && Number.isFinite(retryAfter)) e.retryAfterMs = retryAfter * 1000;
  // Refused (e.g. DeviceDenied): an operator must act; do not hammer the server.
  else if (res.status >= 400 && res.status < 500) e.retryAfterMs = ctx.timing.slowRetryMs;
  throw e;
}

async function waitForClaim(
  ctx: PairingFlowContext,
  base: string,
  session: PairingStartResponse,
  backoff: Backoff,
): Promise<'claimed' | 'expired' | 'aborted'> {
  const wait = Math.min(ctx.pollWaitSeconds ?? PAIRING_MAX_WAIT_SECONDS, PAIRING_MAX_WAIT_SECONDS);
  while (!ctx.signal.aborted) {
    try {
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(wait * 1000 + ctx.timing.requestTimeoutMs)]);
      const res = await (ctx.fetch ?? fetch)(`${base}${AGENT_PAIRINGS_PATH}/${encodeURIComponent(session.id)}?waitSeconds=${wait}`, {
        headers: { authorization: `Bearer ${session.pollSecret}` },
        signal,
      });
      const json = await res.json().catch(() => undefined);
      if (res.ok) {
        const poll = PairingPollResponse.parse(json);
        if (poll.state === 'claimed') return 'claimed';
        if (poll.state !== 'pending') return 'expired';
        continue;
      }
      if (res.status >= 400 && res.status < 500 && res.status !== 429) return 'expired'; // session gone: start over
    } catch (err) {
      if (ctx.signal.aborted) break;
      ctx.logger.warn({ err: (err as Error).message }, 'pairing poll failed; retrying');
    }
    if (Date.parse(session.expiresAt) <= Date.now()) return 'expired';
    if (!(await sleep(backoff.next(), ctx.signal))) break;
  }
  return 'aborted';
}
