import {
  CONNECT_AUDIENCE,
  DEVICE_TOKEN_CLOCK_SKEW_SECONDS,
  DEVICE_TOKEN_MAX_LIFETIME_SECONDS,
  type DevicePublicKey,
  deviceKeyAlgorithm,
  EdgeplaneError,
  type ErrorCode,
  Name,
} from '@edgeplane/protocol';
import { decodeJwt, importJWK, jwtVerify } from 'jose';
import type { Executor } from '../store/db.js';
import { deleteExpiredConnectTokenUses, insertConnectTokenUse } from './connect-token.repository.js';

/** Longest token id accepted (the agent sends a UUID); the store column holds 128 characters. */
const MAX_JTI_LENGTH = 128;
const JTI_PATTERN = new RegExp(`^[\\x21-\\x7e]{1,${MAX_JTI_LENGTH}}$`);

/**
 * Verifies a JWT signed by a device key for one audience; throws `code` on any failure. The key's type
 * fixes the one algorithm accepted: ES256 for a P-256 (TPM) key, EdDSA for an Ed25519 (file) key, so a
 * token can never pick a weaker or other algorithm than the one the host registered with.
 */
export async function verifyDeviceToken(token: string, publicKey: DevicePublicKey, audience: string, code: ErrorCode) {
  try {
    const alg = deviceKeyAlgorithm(publicKey);
    const key = await importJWK({ ...publicKey, alg }, alg);
    const { payload } = await jwtVerify(token, key, {
      audience,
      algorithms: alg === 'ES256' ? ['ES256'] : ['EdDSA', 'Ed25519'],
      clockTolerance: DEVICE_TOKEN_CLOCK_SKEW_SECONDS,
      requiredClaims: ['iat', 'exp', 'jti', 'sub'],
    });
    const { iat, exp, jti } = payload as { iat: number; exp: number; jti: unknown };
    const now = Math.floor(Date.now() / 1000);
    if (exp - iat > DEVICE_TOKEN_MAX_LIFETIME_SECONDS) throw new EdgeplaneError(code, `device token lifetime exceeds ${DEVICE_TOKEN_MAX_LIFETIME_SECONDS}s`);
    // A token minted ahead of time would otherwise stay usable for as long as its maker chose:
    // iat may not lie in the future and exp may not lie further out than one lifetime from now.
    if (iat > now + DEVICE_TOKEN_CLOCK_SKEW_SECONDS) throw new EdgeplaneError(code, 'device token issued in the future (check the device clock)');
    if (exp > now + DEVICE_TOKEN_MAX_LIFETIME_SECONDS + DEVICE_TOKEN_CLOCK_SKEW_SECONDS)
      throw new EdgeplaneError(code, `device token expires more than ${DEVICE_TOKEN_MAX_LIFETIME_SECONDS}s from now`);
    // The id is stored (replay cache): printable ASCII only (the agent sends a UUID); a NUL would not even reach PostgreSQL.
    if (typeof jti !== 'string' || !JTI_PATTERN.test(jti))
      throw new EdgeplaneError(code, `device token id (jti) must be 1 to ${MAX_JTI_LENGTH} printable ASCII characters`);
    return payload as { sub: string; jti: string; exp: number; iat: number };
  } catch (err) {
    if (err instanceof EdgeplaneError) throw err;
    throw new EdgeplaneError(code, `device token rejected: ${(err as Error).message}`);
  }
}

/** The host a connect token claims to be, read before verification to find the key to verify with. */
export function claimedHost(token: string): string {
  try {
    const { sub, aud } = decodeJwt(token);
    // The host name is looked up in the store: only a valid resource name gets that far.
    if (Name.safeParse(sub).success && (aud === CONNECT_AUDIENCE || (Array.isArray(aud) && aud.includes(CONNECT_AUDIENCE)))) return sub as string;
  } catch {}
  throw new EdgeplaneError('ConnectTokenInvalid', 'the connect token is not a device-signed JWT for edgeplane-connect');
}

/**
 * Remembers connect-token ids until they expire so a captured token cannot be replayed. The ids live
 * in the store, so a restart does not forget them (and every replica sees the same ids).
 */
export class ReplayCache {
  private nextPruneAt = 0;
  constructor(private readonly db: Executor) {}

  /** Returns false if the id was already used. */
  async use(jti: string, expSeconds: number): Promise<boolean> {
    const nowSeconds = Math.floor(Date.now() / 1000);
    if (nowSeconds >= this.nextPruneAt) {
      this.nextPruneAt = nowSeconds + 60;
      await deleteExpiredConnectTokenUses(this.db, nowSeconds - DEVICE_TOKEN_CLOCK_SKEW_SECONDS);
    }
    return insertConnectTokenUse(this.db, jti, Math.ceil(expSeconds));
  }
}
