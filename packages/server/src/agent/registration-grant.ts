import { canonicalDeviceKey, EdgeplaneError, PAIRING_TTL_SECONDS, type RegisterRequest } from '@edgeplane/protocol';
import { findPairingById, transitionPairing } from '../pairing/pairing.repository.js';
import { takeTokenUse } from '../registration-token/registration-token.repository.js';
import { checkRegistrationToken } from '../registration-token/registration-token.service.js';
import { hashSecret } from '../resource/secrets.js';
import type { Executor } from '../store/db.js';
import type { EdgeHostTable } from '../store/schema.js';

/** What a registration credential grants; all three kinds end in the same per-device identity. */
export interface Grant {
  via: 'token' | 'pairing-key' | 'pairing';
  /** For events and logs: `token "x"`, `its pairing key`, `pairing code ABCD2345`. */
  describe: string;
  tokenName?: string;
  autoApprove: boolean;
  /** The token admits only device UIDs an operator pre-registered. */
  preRegisteredOnly: boolean;
  /** The token admits only devices whose key lives in a TPM (identity: tpm). */
  requireTpm?: boolean;
  project?: string;
  labels: Record<string, string>;
  site?: string;
  /** Uses the credential up (a token use, the pairing session); throws if it is already used up. */
  consume(db: Executor, hostName: string, now: string): Promise<void>;
  /**
   * Counts a use of a token without a use limit, after the registration committed: an update of the
   * token's row inside the registration's transaction would hold that row's lock until the commit,
   * so every registration with one token (a fleet rolling out) would wait for the one before it.
   * A limited token takes its use in the transaction instead (consume), so it never admits one too many.
   */
  countUse?(db: Executor, now: string): Promise<void>;
}

/**
 * Checks the one credential a registration carries and says what it grants. `existing` is the host
 * already bound to this device UID, if any (a pairing key is only valid for its pre-registered host).
 */
export async function resolveGrant(db: Executor, req: RegisterRequest, existing: EdgeHostTable | undefined, now: string): Promise<Grant> {
  if (req.token !== undefined) {
    const token = await checkRegistrationToken(db, req.token, true);
    return {
      via: 'token',
      describe: `token "${token.name}"`,
      tokenName: token.name,
      autoApprove: token.spec.autoApprove,
      preRegisteredOnly: (token.spec as { preRegisteredOnly?: boolean }).preRegisteredOnly === true,
      requireTpm: (token.spec as { requireTpm?: boolean }).requireTpm === true,
      labels: token.spec.labels ?? {},
      site: token.spec.site,
      async consume(trx, _host, at) {
        if (token.row.max_uses === null || token.row.max_uses === undefined) return;
        if (!(await takeTokenUse(trx, token.name, at))) throw new EdgeplaneError('RegistrationTokenExhausted', `registration token "${token.name}" is used up`);
      },
      async countUse(db, at) {
        if (token.row.max_uses === null || token.row.max_uses === undefined) await takeTokenUse(db, token.name, at);
      },
    };
  }
  if (req.pairingKey !== undefined) {
    if (existing?.state !== 'pre-registered' || !existing.pairing_key_hash || existing.pairing_key_hash !== hashSecret(req.pairingKey))
      throw new EdgeplaneError(
        'PairingKeyInvalid',
        `the pairing key is not valid for device UID ${req.deviceUid} (wrong, already used, or not pre-registered)`,
      );
    // The operator approved this device by pre-registering it: the host is ready at once.
    return { via: 'pairing-key', describe: 'its pairing key', autoApprove: true, preRegisteredOnly: false, labels: {}, async consume() {} };
  }
  const cred = req.pairing!;
  const p = await findPairingById(db, cred.id);
  const claimWindowMs = PAIRING_TTL_SECONDS * 1000;
  if (
    !p ||
    p.poll_secret_hash !== hashSecret(cred.secret) ||
    p.state !== 'claimed' ||
    p.device_uid !== req.deviceUid ||
    canonicalDeviceKey(JSON.parse(p.public_key)) !== canonicalDeviceKey(req.publicKey) ||
    Date.parse(p.claimed_at ?? '') + claimWindowMs < Date.parse(now)
  )
    throw new EdgeplaneError('PairingInvalid', 'the pairing session is unknown, not claimed, already used, expired, or belongs to another device key');
  return {
    via: 'pairing',
    describe: `pairing code ${p.code} claimed by ${p.claimed_by}`,
    autoApprove: true,
    preRegisteredOnly: false,
    project: p.project ?? undefined,
    labels: p.labels ? JSON.parse(p.labels) : {},
    site: p.site ?? undefined,
    async consume(trx, hostName) {
      if (!(await transitionPairing(trx, p.id, 'claimed', { state: 'completed', host_name: hostName })))
        throw new EdgeplaneError('PairingInvalid', 'the pairing session was already used');
    },
  };
}
