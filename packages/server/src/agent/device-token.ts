import {
  CONNECT_AUDIENCE,
  DEVICE_TOKEN_CLOCK_SKEW_SECONDS,
  DEVICE_TOKEN_MAX_LIFETIME_SECONDS,
  type DevicePublicKey,
  EdgeplaneError,
  type ErrorCode,
} from '@edgeplane/protocol';
import { decodeJwt, importJWK, jwtVerify } from 'jose';

/** Verifies a JWT signed by a device key (EdDSA/Ed25519) for one audience; throws `code` on any failure. */
export async function verifyDeviceToken(token: string, publicKey: DevicePublicKey, audience: string, code: ErrorCode) {
  try {
    const key = await importJWK({ ...publicKey, alg: 'EdDSA' }, 'EdDSA');
    const { payload } = await jwtVerify(token, key, {
      audience,
      algorithms: ['EdDSA', 'Ed25519'],
      clockTolerance: DEVICE_TOKEN_CLOCK_SKEW_SECONDS,
      requiredClaims: ['iat', 'exp', 'jti', 'sub'],
    });
    if ((payload.exp as number) - (payload.iat as number) > DEVICE_TOKEN_MAX_LIFETIME_SECONDS) {
      throw new EdgeplaneError(code, `device token lifetime exceeds ${DEVICE_TOKEN_MAX_LIFETIME_SECONDS}s`);
    }
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
    if (typeof sub === 'string' && (aud === CONNECT_AUDIENCE || (Array.isArray(aud) && aud.includes(CONNECT_AUDIENCE)))) return sub;
  } catch {}
  throw new EdgeplaneError('ConnectTokenInvalid', 'the connect token is not a device-signed JWT for edgeplane-connect');
}

/**
 * Remembers token ids until they expire so a captured connect token cannot be replayed.
 * In memory: with several replicas a replay could land on another replica inside the token's
 * short lifetime; the scale-out issue moves this into the shared store.
 */
export class ReplayCache {
  private seen = new Map<string, number>();
  /** Returns false if the id was already used. */
  use(jti: string, expSeconds: number): boolean {
    const nowSeconds = Date.now() / 1000;
    if (this.seen.size > 10_000) for (const [k, exp] of this.seen) if (exp + DEVICE_TOKEN_CLOCK_SKEW_SECONDS < nowSeconds) this.seen.delete(k);
    if (this.seen.has(jti)) return false;
    this.seen.set(jti, expSeconds);
    return true;
  }
}
