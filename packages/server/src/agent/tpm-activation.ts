import { createHash, createPublicKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalDeviceKey, EdgeplaneError, type RegisterRequest, type TpmActivationChallenge } from '@edgeplane/protocol';
import type { SecretBox } from '../cluster/secret-box.js';
import { makeCredential, parseTpmSigningKey, TpmStructureError } from './tpm-credential.js';

/** How long a challenge can be answered. */
export const TPM_CHALLENGE_TTL_SECONDS = 300;
/** Additional data of sealed challenges: a challenge opens only as a challenge (not as any other sealed secret). */
const CHALLENGE_AAD = 'tpm-activation/v1';

/** What a sealed challenge binds: the credential's secret, the device key, the EK and the key's Name, until `exp`. */
interface Sealed {
  secret: string;
  key: string;
  ek: string;
  name: string;
  exp: number;
}

/**
 * Proof that a registration's P-256 key lives in the TPM whose endorsement key (EK) it names, by TPM 2.0
 * credential activation (TCG TPM 2.0 Part 1, "Credential Protection"): the server makes a credential
 * for the EK and the key's Name; only a TPM holding both the EK's private part and the key can
 * recover its secret (tpm2_activatecredential(1)). Stateless: the secret travels to the device inside a
 * challenge sealed with the server's secret key (SecretBox, shared by replicas through
 * EDGEPLANE_SECRET_KEY), so nothing is written until the answer is proven.
 */
export class TpmActivation {
  constructor(
    private readonly box: SecretBox,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns when `req` (a `tpm` registration) carries a valid answer; else throws TpmActivationRequired with a fresh challenge. */
  verify(req: RegisterRequest): void {
    const claim = req.identity;
    if (claim?.kind !== 'tpm' || req.publicKey.kty !== 'EC') return;
    let key: ReturnType<typeof parseTpmSigningKey>;
    let ekFingerprint: string;
    try {
      key = parseTpmSigningKey(Buffer.from(claim.keyPublic, 'base64'));
      ekFingerprint = createHash('sha256')
        .update(createPublicKey(claim.ekPublicKey).export({ type: 'spki', format: 'der' }))
        .digest('hex');
    } catch (err) {
      throw invalid(err);
    }
    if (key.x.toString('base64url') !== req.publicKey.x || key.y.toString('base64url') !== req.publicKey.y)
      throw invalid(new TpmStructureError('the TPM public area is another key than publicKey'));
    const bound = { key: canonicalDeviceKey(req.publicKey), ek: ekFingerprint, name: key.name.toString('hex') };
    const refusal = claim.activation ? this.check(claim.activation, bound) : undefined;
    if (claim.activation && !refusal) return;
    const secret = randomBytes(32);
    let credential: Buffer;
    try {
      credential = makeCredential(claim.ekPublicKey, key.name, secret).blob;
    } catch (err) {
      throw invalid(err);
    }
    const exp = this.now() + TPM_CHALLENGE_TTL_SECONDS * 1000;
    const sealed: Sealed = { secret: secret.toString('base64'), ...bound, exp };
    const details: TpmActivationChallenge = {
      credential: credential.toString('base64'),
      challenge: this.box.seal(JSON.stringify(sealed), CHALLENGE_AAD),
      expiresAt: new Date(exp).toISOString(),
    };
    throw new EdgeplaneError(
      'TpmActivationRequired',
      refusal
        ? `the TPM activation answer was refused (${refusal}); activate the new credential in the TPM and register again`
        : 'prove the key is in the TPM: activate the credential with its endorsement key and register again with the secret and challenge',
      details,
    );
  }

  /** Why an answer does not prove the key, or undefined when it does. */
  private check(answer: { challenge: string; secret: string }, bound: { key: string; ek: string; name: string }): string | undefined {
    let sealed: Sealed;
    try {
      sealed = JSON.parse(this.box.open(answer.challenge, CHALLENGE_AAD)) as Sealed;
    } catch {
      return 'the challenge was not sealed by this server';
    }
    if (!(sealed.exp > this.now())) return 'the challenge expired';
    if (sealed.key !== bound.key || sealed.ek !== bound.ek || sealed.name !== bound.name) return 'the challenge was made for another key or TPM';
    const expected = Buffer.from(sealed.secret, 'base64');
    const given = Buffer.from(answer.secret, 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'the secret is not the one the credential carries';
    return undefined;
  }
}

function invalid(err: unknown): EdgeplaneError {
  return new EdgeplaneError('ValidationFailed', `the TPM identity cannot be checked: ${(err as Error).message}`, {
    issues: [{ path: 'identity', message: (err as Error).message }],
  });
}
