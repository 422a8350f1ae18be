import { createHash, randomBytes } from 'node:crypto';

/** A high-entropy secret with a readable prefix saying what it is (ept_ = API token, eprt_ = registration token). */
export function newSecret(prefix: 'ept' | 'eprt'): string {
  return `${prefix}_${randomBytes(24).toString('base64url')}`;
}

/** Secrets are 192-bit random, so a plain SHA-256 is enough; no slow password hash needed. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** What lists show of a secret: enough to recognize it, not to use it. */
export function secretPrefix(secret: string): string {
  return `${secret.slice(0, secret.indexOf('_') + 5)}...`;
}
