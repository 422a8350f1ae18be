import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

/** How to reach a server whose certificate may be signed by a private CA. */
export interface ServerTrust {
  /** CA certificates for `ws` (`ca` option); undefined: Node's default store. */
  ca?: string[];
  /** fetch that trusts the same CAs. */
  fetch: typeof globalThis.fetch;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;

/**
 * Node's CA store plus the PEM certificates in `caFile`. Passing `ca` to TLS replaces the default
 * store, so the defaults are added back: a private CA is trusted in addition to the public ones.
 * Throws with a message naming the file when it cannot be read or holds no certificate.
 */
export function trustedCas(caFile: string): string[] {
  let text: string;
  try {
    text = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`cannot read CA file ${caFile}: ${(err as Error).message}`);
  }
  const certs = text.match(PEM_CERT) ?? [];
  if (!certs.length) throw new Error(`CA file ${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return [...rootCertificates, ...certs];
}

/**
 * Global fetch cannot take CAs per call; undici's fetch with an Agent whose connections carry `ca`
 * can. Without a CA file this is the global fetch and Node's default store. undici loads on the
 * first request: the CLI shares this module and most of its runs never need it.
 */
export function serverTrust(caFile: string | undefined): ServerTrust {
  if (!caFile) return { fetch: (input, init) => globalThis.fetch(input, init) };
  const ca = trustedCas(caFile);
  let dispatched: Promise<{ undiciFetch: typeof import('undici').fetch; dispatcher: import('undici').Agent }> | undefined;
  const fetch = (async (input: string | URL, init?: RequestInit) => {
    // Bundled (esbuild, the OS image's agent), undici's CommonJS module arrives as a default export only.
    dispatched ??= import('undici').then((m) => {
      const u = ((m as unknown as { default?: typeof m }).default ?? m) as typeof m;
      return { undiciFetch: u.fetch, dispatcher: new u.Agent({ connect: { ca } }) };
    });
    const { undiciFetch, dispatcher } = await dispatched;
    return undiciFetch(input, { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher });
  }) as unknown as typeof globalThis.fetch;
  return { ca, fetch };
}

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** True when a connection failed because the server's certificate is not trusted or does not match. */
export function isCertificateError(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && TLS_TRUST_CODES.has(e.code)) return true;
  }
  return false;
}
