import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import {
  canonicalDeviceKey,
  DEFAULT_PROJECT,
  EdgeplaneError,
  PAIRING_CODE_ALPHABET,
  PAIRING_CODE_LENGTH,
  PAIRING_TTL_SECONDS,
  type PairingClaimRequest,
  type PairingClaimResponse,
  type PairingPollResponse,
  type PairingStartRequest,
  type PairingStartResponse,
  type PairingState,
  REGISTER_AUDIENCE,
} from '@edgeplane/protocol';
import { verifyDeviceToken } from '../agent/device-token.js';
import { findHostByDeviceUid } from '../edgehost/edgehost.repository.js';
import { hostNameForDevice } from '../edgehost/edgehost.service.js';
import { findByName } from '../resource/resource.repository.js';
import { hashSecret } from '../resource/secrets.js';
import type { Db, Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import { countOpenPairings, findPairingByCode, findPairingById, insertPairing, type PairingRow, transitionPairing } from './pairing.repository.js';
import { type PairingCaps, type PairingSessions, POLL_RECHECK_MS } from './pairing-sessions.js';

export function newPairingCode(): string {
  let code = '';
  for (let i = 0; i < PAIRING_CODE_LENGTH; i++) code += PAIRING_CODE_ALPHABET[randomInt(PAIRING_CODE_ALPHABET.length)];
  return code;
}

function stateOf(p: PairingRow, nowMs = Date.now()): PairingState {
  if (p.state === 'pending' && Date.parse(p.expires_at) <= nowMs) return 'expired';
  return p.state as PairingState;
}

async function refuseDenied(db: Executor, deviceUid: string): Promise<void> {
  const host = await findHostByDeviceUid(db, deviceUid);
  if (host && JSON.parse(host.spec).denied === true)
    throw new EdgeplaneError('DeviceDenied', `device UID ${deviceUid} is on the deny-list (host "${host.name}")`);
}

/** Refuses a start when this source, or the server in all, holds as many pending sessions as its cap allows. */
async function refuseOverCap(db: Db, sourceIp: string, caps: PairingCaps, now: Date): Promise<void> {
  const at = now.toISOString();
  const over = (open: { count: number; firstExpiry?: string }, max: number, what: string, limit: string) => {
    if (open.count < max) return;
    // The first of those sessions to expire frees a place.
    const retryAfterSeconds = Math.max(1, Math.ceil((Date.parse(open.firstExpiry ?? at) - now.getTime()) / 1000));
    throw new EdgeplaneError('RateLimited', `${what} (${max}); retry in ${retryAfterSeconds}s`, { limit, retryAfterSeconds });
  };
  over(await countOpenPairings(db, at, sourceIp), caps.maxPendingPerSource, 'too many pending pairing sessions from this address', 'pendingPairingsPerSource');
  over(await countOpenPairings(db, at), caps.maxPending, 'the server holds too many pending pairing sessions', 'pendingPairings');
}

/**
 * An agent without a token asks for a pairing session; it shows the code, an operator claims it.
 * Needs no credential, so the proof is checked first and the caps on pending sessions before the insert.
 */
export async function startPairing(
  db: Db,
  req: PairingStartRequest,
  sourceIp: string,
  sessions: Pick<PairingSessions, 'admit' | 'caps'>,
  ttlSeconds = PAIRING_TTL_SECONDS,
): Promise<PairingStartResponse> {
  const proof = await verifyDeviceToken(req.proof, req.publicKey, REGISTER_AUDIENCE, 'DeviceProofInvalid');
  if (proof.sub !== req.deviceUid) throw new EdgeplaneError('DeviceProofInvalid', 'the pairing proof was made for another device UID');
  await refuseDenied(db, req.deviceUid);
  return sessions.admit(async () => {
    const now = new Date();
    await refuseOverCap(db, sourceIp, sessions.caps, now);
    return insertSession(db, req, sourceIp, now, ttlSeconds);
  });
}

async function insertSession(db: Db, req: PairingStartRequest, sourceIp: string, now: Date, ttlSeconds: number): Promise<PairingStartResponse> {
  const pollSecret = `eppoll_${randomBytes(24).toString('base64url')}`;
  const expiresAt = new Date(now.getTime() + ttlSeconds * 1000).toISOString();
  for (let attempt = 0; ; attempt++) {
    const row: PairingRow = {
      id: randomUUID(),
      code: newPairingCode(),
      device_uid: req.deviceUid,
      public_key: canonicalDeviceKey(req.publicKey),
      inventory: JSON.stringify(req.inventory),
      agent_version: req.agentVersion,
      poll_secret_hash: hashSecret(pollSecret),
      state: 'pending',
      created_at: now.toISOString(),
      expires_at: expiresAt,
      source_ip: sourceIp.slice(0, 64),
      claimed_by: null,
      claimed_at: null,
      project: null,
      site: null,
      labels: null,
      host_name: null,
    };
    try {
      await insertPairing(db, row);
      return { id: row.id, code: row.code, expiresAt, pollSecret };
    } catch (err) {
      if (attempt < 5 && isUniqueViolation(err)) continue; // a code collision: draw another
      throw err;
    }
  }
}

/**
 * The device's view of its session; with waitSeconds, waits (long-poll) while it is still pending.
 * One poll per session waits at a time (see PairingSessions.hold); a claim wakes it, and it reads
 * the store again every POLL_RECHECK_MS anyway (claims on another replica, expiry).
 */
export async function pollPairing(
  db: Db,
  id: string,
  secret: string,
  waitSeconds: number,
  sessions: Pick<PairingSessions, 'hold'>,
  signal: AbortSignal,
): Promise<PairingPollResponse> {
  const read = async () => {
    const p = await findPairingById(db, id);
    if (!p || p.poll_secret_hash !== hashSecret(secret)) throw new EdgeplaneError('PairingInvalid', 'unknown pairing session or wrong poll secret');
    return p;
  };
  const view = (p: PairingRow): PairingPollResponse => ({ id: p.id, state: stateOf(p), expiresAt: p.expires_at, ...(p.project ? { project: p.project } : {}) });
  let p = await read();
  const deadline = Date.now() + waitSeconds * 1000;
  if (stateOf(p) !== 'pending' || waitSeconds <= 0 || signal.aborted) return view(p);
  const poll = sessions.hold(id, deadline);
  try {
    for (;;) {
      const left = Math.min(deadline, Date.parse(p.expires_at)) - Date.now();
      if (left <= 0 || signal.aborted) return view(p);
      await poll.wait(Math.min(left, POLL_RECHECK_MS), signal);
      p = await read();
      if (stateOf(p) !== 'pending') return view(p);
    }
  } finally {
    poll.release();
  }
}

/**
 * An operator claims a code: the session becomes a single-use, auto-approving credential for that
 * device. `claimed` learns the session id after the claim committed (to wake the device's long-poll).
 */
export async function claimPairing(
  db: Db,
  rawCode: string,
  body: PairingClaimRequest,
  user: string,
  claimed?: (id: string) => void,
): Promise<PairingClaimResponse> {
  let claimedId: string | undefined;
  const res = await db.transaction().execute(async (trx): Promise<PairingClaimResponse> => {
    const p = await findPairingByCode(trx, rawCode);
    if (!p) throw new EdgeplaneError('PairingCodeInvalid', 'no pending pairing has this code');
    const state = stateOf(p);
    if (state === 'expired') throw new EdgeplaneError('PairingCodeExpired', `pairing code ${p.code} expired at ${p.expires_at}`);
    if (state !== 'pending')
      throw new EdgeplaneError('PairingCodeUsed', `pairing code ${p.code} was already claimed${p.claimed_by ? ` by ${p.claimed_by}` : ''}`);
    const project = body.project ?? DEFAULT_PROJECT;
    if (!(await findByName(trx, 'projects', project)))
      throw new EdgeplaneError('NotFound', `Project "${project}" not found`, { kind: 'Project', name: project });
    await refuseDenied(trx, p.device_uid);
    const labels = body.labels ?? {};
    const now = new Date().toISOString();
    const values = { state: 'claimed', claimed_by: user, claimed_at: now, project, site: body.site ?? null, labels: JSON.stringify(labels) };
    if (!(await transitionPairing(trx, p.id, 'pending', values))) throw new EdgeplaneError('PairingCodeUsed', `pairing code ${p.code} was already claimed`);
    claimedId = p.id;
    const existing = await findHostByDeviceUid(trx, p.device_uid);
    return {
      code: p.code,
      state: 'claimed',
      deviceUid: p.device_uid,
      hostName: existing?.name ?? hostNameForDevice(p.device_uid),
      project,
      ...(body.site ? { site: body.site } : {}),
      labels,
      claimedBy: user,
      inventory: JSON.parse(p.inventory),
    };
  });
  if (claimedId) claimed?.(claimedId);
  return res;
}
