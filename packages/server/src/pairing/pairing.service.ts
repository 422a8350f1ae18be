import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import {
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
import { deleteExpiredPairings, findPairingByCode, findPairingById, insertPairing, type PairingRow, transitionPairing } from './pairing.repository.js';

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

/** An agent without a token asks for a pairing session; it shows the code, an operator claims it. */
export async function startPairing(db: Db, req: PairingStartRequest, sourceIp: string, ttlSeconds = PAIRING_TTL_SECONDS): Promise<PairingStartResponse> {
  const proof = await verifyDeviceToken(req.proof, req.publicKey, REGISTER_AUDIENCE, 'DeviceProofInvalid');
  if (proof.sub !== req.deviceUid) throw new EdgeplaneError('DeviceProofInvalid', 'the pairing proof was made for another device UID');
  await refuseDenied(db, req.deviceUid);
  const now = new Date();
  // Sessions a day past expiry are only clutter, and their codes should return to the pool.
  await deleteExpiredPairings(db, new Date(now.getTime() - 86_400_000).toISOString());
  const pollSecret = `eppoll_${randomBytes(24).toString('base64url')}`;
  const expiresAt = new Date(now.getTime() + ttlSeconds * 1000).toISOString();
  for (let attempt = 0; ; attempt++) {
    const row: PairingRow = {
      id: randomUUID(),
      code: newPairingCode(),
      device_uid: req.deviceUid,
      public_key: JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: req.publicKey.x }),
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

/** The device's view of its session; with waitSeconds, waits (long-poll) while it is still pending. */
export async function pollPairing(db: Db, id: string, secret: string, waitSeconds = 0, signal?: AbortSignal): Promise<PairingPollResponse> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const p = await findPairingById(db, id);
    if (!p || p.poll_secret_hash !== hashSecret(secret)) throw new EdgeplaneError('PairingInvalid', 'unknown pairing session or wrong poll secret');
    const state = stateOf(p);
    if (state !== 'pending' || Date.now() >= deadline || signal?.aborted)
      return { id: p.id, state, expiresAt: p.expires_at, ...(p.project ? { project: p.project } : {}) };
    await new Promise((r) => setTimeout(r, Math.min(250, Math.max(0, deadline - Date.now()))));
  }
}

/** An operator claims a code: the session becomes a single-use, auto-approving credential for that device. */
export async function claimPairing(db: Db, rawCode: string, body: PairingClaimRequest, user: string): Promise<PairingClaimResponse> {
  return db.transaction().execute(async (trx) => {
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
}
