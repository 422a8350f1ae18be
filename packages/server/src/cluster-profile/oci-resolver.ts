import { createHash } from 'node:crypto';
import { EdgeplaneError } from '@edgeplane/protocol';

/**
 * Resolves an OCI image reference to its manifest digest over the OCI distribution API
 * (HEAD, then GET, /v2/<repo>/manifests/<tag>), with anonymous Bearer token auth as registries
 * announce it in WWW-Authenticate. Written on fetch: the API is three requests, and the client
 * libraries on npm pull in a whole container toolchain.
 */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export function parseImageRef(ref: string): ImageRef {
  const m = ref.match(/^([a-zA-Z0-9.-]+(?::\d+)?)\/([a-z0-9._/-]+?)(?::([A-Za-z0-9_.-]{1,128}))?(?:@(sha256:[a-f0-9]{64}))?$/);
  if (!m) throw new EdgeplaneError('ImageResolveFailed', `"${ref}" is not an image reference <registry>/<repository>[:tag][@digest]`, { image: ref });
  return { registry: m[1], repository: m[2], tag: m[3], digest: m[4] };
}

/** Loopback registries (a lab, a test) speak plain HTTP, as docker and skopeo also assume. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const TIMEOUT_MS = Number(process.env.EDGEPLANE_REGISTRY_TIMEOUT_MS ?? 10_000);
const CACHE_TTL_MS = 30_000;
const cache = new Map<string, { digest: string; expires: number }>();

function fail(ref: string, reason: string): EdgeplaneError {
  return new EdgeplaneError('ImageResolveFailed', `cannot resolve OS image "${ref}" to a digest: ${reason}`, { image: ref, reason });
}

/** Parses `Bearer realm="...",service="...",scope="..."`. */
function bearerChallenge(header: string | null): Record<string, string> | undefined {
  if (!header || !/^Bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]] = m[2];
  return params.realm ? params : undefined;
}

async function anonymousToken(challenge: Record<string, string>, repository: string): Promise<string> {
  const url = new URL(challenge.realm);
  if (challenge.service) url.searchParams.set('service', challenge.service);
  url.searchParams.set('scope', challenge.scope ?? `repository:${repository}:pull`);
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) throw new Error(`token endpoint answered HTTP ${res.status}`);
  const body = (await res.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new Error('token endpoint answered without a token');
  return token;
}

/**
 * The manifest digest `ref` points at now. A reference that already carries @sha256 is returned
 * as is. Results are cached for a short time so a request that resolved before opening its
 * store transaction does not go to the registry again inside it.
 */
export async function resolveImageDigest(ref: string, opts: { insecure?: boolean } = {}): Promise<string> {
  const parsed = parseImageRef(ref);
  if (parsed.digest) return parsed.digest;
  const key = `${opts.insecure ? 'http' : 'https'} ${ref}`;
  const hit = cache.get(key);
  if (hit && hit.expires > Date.now()) return hit.digest;
  const scheme = opts.insecure || isLoopbackRegistry(parsed.registry) ? 'http' : 'https';
  const url = `${scheme}://${parsed.registry}/v2/${parsed.repository}/manifests/${parsed.tag ?? 'latest'}`;
  let digest: string;
  try {
    digest = await fetchDigest(url, parsed.repository, ref);
  } catch (err) {
    if (err instanceof EdgeplaneError) throw err;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw fail(ref, `${scheme.toUpperCase()} request to ${parsed.registry} failed: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  cache.set(key, { digest, expires: Date.now() + CACHE_TTL_MS });
  return digest;
}

async function fetchDigest(url: string, repository: string, ref: string): Promise<string> {
  const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
  let res = await fetch(url, { method: 'HEAD', headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (res.status === 401) {
    const challenge = bearerChallenge(res.headers.get('www-authenticate'));
    if (!challenge) throw fail(ref, 'the registry requires credentials (only anonymous pull is supported)');
    headers.authorization = `Bearer ${await anonymousToken(challenge, repository)}`;
    res = await fetch(url, { method: 'HEAD', headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  }
  if (res.status === 404) throw fail(ref, 'the registry has no such repository or tag (HTTP 404)');
  if (res.status === 401 || res.status === 403) throw fail(ref, `the registry refused access (HTTP ${res.status})`);
  const header = res.headers.get('docker-content-digest');
  if (res.ok && header && /^sha256:[a-f0-9]{64}$/.test(header)) return header;
  // Some registries omit the header on HEAD (or answer HEAD with 405): read the manifest and hash it.
  const get = await fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!get.ok) throw fail(ref, `the registry answered HTTP ${get.status}`);
  const body = Buffer.from(await get.arrayBuffer());
  const fromHeader = get.headers.get('docker-content-digest');
  return fromHeader && /^sha256:[a-f0-9]{64}$/.test(fromHeader) ? fromHeader : `sha256:${createHash('sha256').update(body).digest('hex')}`;
}
