import { createHash } from 'node:crypto';
import { EdgeplaneError } from '@edgeplane/protocol';

/**
 * Resolves an OCI image reference to its manifest digest over the OCI distribution API
 * (HEAD, then GET, /v2/<repo>/manifests/<tag>), with anonymous Bearer token auth as registries
 * announce it in WWW-Authenticate. Written on fetch: the API is three requests, and the client
 * libraries on npm pull in a whole container toolchain.
 *
 * Operators name the registry, so every request here is one the server makes on their say-so to a
 * host of their choosing. Hence: no redirects, a size cap on every body read, a timeout on every
 * request, a token realm only on the registry's own host and port, an optional allow-list of
 * registries, and one message for every failure so the API is no port scanner (the detail goes to
 * the server log at debug).
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

/** Largest manifest or token answer read; real manifests are a few KiB. */
export const MAX_REGISTRY_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;
const CACHE_TTL_MS = 30_000;
/** Failures are kept just long enough for the write that follows its prefetch (see prefetchProfileDigests). */
const FAILURE_TTL_MS = 5_000;
const CACHE_MAX = 256;

export interface ImageResolverOptions {
  /** `host[:port]` entries, matched exactly (case-insensitive); unset: any registry. */
  allowedRegistries?: readonly string[];
  /** Per request (headers and body); default EDGEPLANE_REGISTRY_TIMEOUT_MS or 10 s. */
  timeoutMs?: number;
  maxBodyBytes?: number;
  log?: { debug(obj: object, msg: string): void };
}

/** Why a resolution failed, for the server log only; the API caller gets the generic message. */
class RegistryFailure extends Error {}

/** Parses `Bearer realm="...",service="...",scope="..."`. */
function bearerChallenge(header: string | null): Record<string, string> | undefined {
  if (!header || !/^Bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]] = m[2];
  return params.realm ? params : undefined;
}

/** `host:port` of a URL with the scheme's default port filled in, lower-cased. */
function origin(url: URL): string {
  return `${url.hostname.toLowerCase()}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}

/**
 * Reads a body up to `cap` bytes and cancels the stream past it. `arrayBuffer()` would hold
 * whatever the registry sends (hundreds of MB) in memory.
 */
async function readCapped(res: Response, cap: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > cap) {
    await res.body?.cancel().catch(() => {});
    throw new RegistryFailure(`answer of ${declared} bytes is over the ${cap}-byte cap`);
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > cap) {
      await reader.cancel().catch(() => {});
      throw new RegistryFailure(`answer is over the ${cap}-byte cap`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** Resolves image references to digests for one server instance (its own cache and policy). */
export class ImageResolver {
  private readonly allowed?: Set<string>;
  private readonly timeoutMs: number;
  private readonly cap: number;
  private readonly cache = new Map<string, { digest?: string; error?: EdgeplaneError; expires: number }>();

  constructor(private readonly opts: ImageResolverOptions = {}) {
    this.allowed = opts.allowedRegistries?.length ? new Set(opts.allowedRegistries.map((r) => r.trim().toLowerCase())) : undefined;
    this.timeoutMs = opts.timeoutMs ?? Number(process.env.EDGEPLANE_REGISTRY_TIMEOUT_MS ?? DEFAULT_TIMEOUT_MS);
    this.cap = opts.maxBodyBytes ?? MAX_REGISTRY_BODY_BYTES;
  }

  /** Refuses references to registries outside the allow-list (when one is set), digest-pinned or not. */
  checkAllowed(ref: string): ImageRef {
    const parsed = parseImageRef(ref);
    if (this.allowed && !this.allowed.has(parsed.registry.toLowerCase()))
      throw new EdgeplaneError('RegistryNotAllowed', `image "${ref}" is not in a registry this server allows (${[...this.allowed].join(', ')})`, {
        image: ref,
        registry: parsed.registry,
      });
    return parsed;
  }

  /**
   * The manifest digest `ref` points at now. A reference that already carries @sha256 is returned
   * as is. Results are cached for a short time so a request that resolved before opening its
   * store transaction does not go to the registry again inside it.
   */
  async resolveDigest(ref: string, opts: { insecure?: boolean } = {}): Promise<string> {
    const parsed = this.checkAllowed(ref);
    if (parsed.digest) return parsed.digest;
    const key = `${opts.insecure ? 'http' : 'https'} ${ref}`;
    const hit = this.cache.get(key);
    if (hit && hit.expires > Date.now()) {
      if (hit.error) throw hit.error;
      if (hit.digest) return hit.digest;
    }
    const scheme = opts.insecure || isLoopbackRegistry(parsed.registry) ? 'http' : 'https';
    const url = `${scheme}://${parsed.registry}/v2/${parsed.repository}/manifests/${parsed.tag ?? 'latest'}`;
    let digest: string;
    try {
      // In the try: a port out of range makes the URL itself invalid, and that too gets the one message.
      digest = await this.fetchDigest(new URL(url), parsed.repository);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      this.opts.log?.debug(
        { image: ref, url, reason: (err as Error).message, cause: cause?.code ?? cause?.message },
        'cannot resolve OS image: registry request failed',
      );
      // One message for refused connections, bad ports, timeouts, 404s and oversized answers alike.
      const error = new EdgeplaneError(
        'ImageResolveFailed',
        `cannot resolve image "${ref}": registry unreachable or image not found (pin it by digest, <repository>@sha256:..., to skip resolution)`,
        { image: ref },
      );
      this.remember(key, { error, expires: Date.now() + FAILURE_TTL_MS });
      throw error;
    }
    this.remember(key, { digest, expires: Date.now() + CACHE_TTL_MS });
    return digest;
  }

  /**
   * The digest `ref` points at now and the manifest's annotations (an index's own annotations for a
   * multi-platform image): what the image records about itself, e.g. the Kubernetes it carries
   * (KUBERNETES_ANNOTATION). A reference pinned by digest is not fetched at all (that is how an
   * operator skips resolution, e.g. when the server cannot reach an air-gapped site's registry), so
   * it has no annotations here; the agent checks what it pulls.
   */
  async resolveImage(ref: string, opts: { insecure?: boolean } = {}): Promise<{ digest: string; annotations: Record<string, string> }> {
    const pinned = this.checkAllowed(ref).digest;
    const digest = await this.resolveDigest(ref, opts);
    if (pinned) return { digest, annotations: {} };
    const key = `annotations ${opts.insecure ? 'http' : 'https'} ${ref}@${digest}`;
    const hit = this.annotationCache.get(key);
    if (hit && hit.expires > Date.now()) return { digest, annotations: hit.annotations };
    const parsed = parseImageRef(ref);
    const scheme = opts.insecure || isLoopbackRegistry(parsed.registry) ? 'http' : 'https';
    const base = `${scheme}://${parsed.registry}/v2/${parsed.repository}/manifests/`;
    let annotations: Record<string, string>;
    let url = new URL(`${base}${parsed.tag ?? 'latest'}`);
    try {
      // By tag (what was just resolved); by digest when the tag has moved on since.
      const byTag = await this.fetchAnnotations(url, parsed.repository);
      if (byTag.digest === digest) annotations = byTag.annotations;
      else {
        url = new URL(`${base}${digest}`);
        const byDigest = await this.fetchAnnotations(url, parsed.repository);
        if (byDigest.digest !== digest) throw new RegistryFailure(`the manifest served for ${digest} hashes to ${byDigest.digest}`);
        annotations = byDigest.annotations;
      }
    } catch (err) {
      this.opts.log?.debug({ image: ref, url: url.href, reason: (err as Error).message }, 'cannot read image manifest: registry request failed');
      throw new EdgeplaneError('ImageResolveFailed', `cannot read the manifest of image "${ref}": registry unreachable or image not found`, { image: ref });
    }
    if (this.annotationCache.size >= CACHE_MAX) this.annotationCache.clear();
    this.annotationCache.set(key, { annotations, expires: Date.now() + CACHE_TTL_MS });
    return { digest, annotations };
  }

  private readonly annotationCache = new Map<string, { annotations: Record<string, string>; expires: number }>();

  /** GET of a manifest with the same rules as fetchDigest: its digest (the hash of its bytes) and string annotations. */
  private async fetchAnnotations(url: URL, repository: string): Promise<{ digest: string; annotations: Record<string, string> }> {
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
    let res = await this.request(url, { headers });
    if (res.status === 401) {
      await res.body?.cancel().catch(() => {});
      const challenge = bearerChallenge(res.headers.get('www-authenticate'));
      if (!challenge) throw new RegistryFailure('the registry requires credentials (only anonymous pull is supported)');
      headers.authorization = `Bearer ${await this.anonymousToken(url, challenge, repository)}`;
      res = await this.request(url, { headers });
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryFailure(`the registry answered HTTP ${res.status}`);
    }
    let manifest: { annotations?: unknown };
    let digest: string;
    try {
      const body = await readCapped(res, this.cap);
      digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      manifest = JSON.parse(body.toString('utf8'));
    } catch (err) {
      if (err instanceof RegistryFailure) throw err;
      throw new RegistryFailure('the manifest is not JSON');
    }
    const out: Record<string, string> = {};
    if (manifest?.annotations && typeof manifest.annotations === 'object')
      for (const [k, v] of Object.entries(manifest.annotations)) if (typeof v === 'string') out[k] = v;
    return { digest, annotations: out };
  }

  /** Caches one result; the cache stays small however many references operators try. */
  private remember(key: string, entry: { digest?: string; error?: EdgeplaneError; expires: number }): void {
    if (this.cache.size >= CACHE_MAX) {
      const now = Date.now();
      for (const [k, v] of this.cache) if (v.expires <= now) this.cache.delete(k);
      if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(key, entry);
  }

  /** One request: no redirects (a 3xx is a failure), bounded in time. */
  private async request(url: URL, init: { method?: string; headers?: Record<string, string> }): Promise<Response> {
    const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryFailure(`${url.href} answered a redirect (HTTP ${res.status}); redirects are not followed`);
    }
    return res;
  }

  /** An anonymous pull token from the realm, which must be on the registry's own host and port. */
  private async anonymousToken(registryUrl: URL, challenge: Record<string, string>, repository: string): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new RegistryFailure(`token realm "${challenge.realm}" is not a URL`);
    }
    const schemeOk = realm.protocol === 'https:' || realm.protocol === registryUrl.protocol;
    if (!schemeOk || origin(realm) !== origin(registryUrl))
      throw new RegistryFailure(`token realm ${realm.origin} is not on the registry's own host and port ${registryUrl.host}`);
    if (challenge.service) realm.searchParams.set('service', challenge.service);
    realm.searchParams.set('scope', challenge.scope ?? `repository:${repository}:pull`);
    const res = await this.request(realm, {});
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryFailure(`token endpoint answered HTTP ${res.status}`);
    }
    let body: { token?: unknown; access_token?: unknown };
    try {
      body = JSON.parse((await readCapped(res, this.cap)).toString('utf8'));
    } catch (err) {
      if (err instanceof RegistryFailure) throw err;
      throw new RegistryFailure('token endpoint answered something other than JSON');
    }
    const token = body?.token ?? body?.access_token;
    if (typeof token !== 'string' || !token) throw new RegistryFailure('token endpoint answered without a token');
    return token;
  }

  private async fetchDigest(url: URL, repository: string): Promise<string> {
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
    let res = await this.request(url, { method: 'HEAD', headers });
    if (res.status === 401) {
      const challenge = bearerChallenge(res.headers.get('www-authenticate'));
      if (!challenge) throw new RegistryFailure('the registry requires credentials (only anonymous pull is supported)');
      headers.authorization = `Bearer ${await this.anonymousToken(url, challenge, repository)}`;
      res = await this.request(url, { method: 'HEAD', headers });
    }
    if (res.status === 401 || res.status === 403 || res.status === 404) throw new RegistryFailure(`the registry answered HTTP ${res.status}`);
    const header = res.headers.get('docker-content-digest');
    if (res.ok && header && /^sha256:[a-f0-9]{64}$/.test(header)) return header;
    // Some registries omit the header on HEAD (or answer HEAD with 405): read the manifest and hash it.
    const get = await this.request(url, { headers });
    if (!get.ok) {
      await get.body?.cancel().catch(() => {});
      throw new RegistryFailure(`the registry answered HTTP ${get.status}`);
    }
    const body = await readCapped(get, this.cap);
    const fromHeader = get.headers.get('docker-content-digest');
    return fromHeader && /^sha256:[a-f0-9]{64}$/.test(fromHeader) ? fromHeader : `sha256:${createHash('sha256').update(body).digest('hex')}`;
  }
}
