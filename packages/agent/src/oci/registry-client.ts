import { Readable } from 'node:stream';
import type { OpenBlob } from './blob-store.js';
import { MANIFEST_ACCEPT, MEDIA, OciError } from './types.js';

export interface RegistryClientOptions {
  /** host[:port] */
  registry: string;
  repository: string;
  /** Plain HTTP (a lab registry or a mirror on the site LAN). */
  insecure?: boolean;
  /** Per-request timeout for headers (not for streaming a body). */
  timeoutMs?: number;
  userAgent?: string;
}

export interface ManifestResponse {
  bytes: Buffer;
  mediaType: string;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * A minimal pull-only client of the OCI distribution API (GET manifests and blobs by digest), with
 * anonymous bearer-token auth: a 401 carrying `WWW-Authenticate: Bearer realm=..,service=..,scope=..`
 * is answered by fetching a token from the realm and retrying once. Blobs may be fetched from a
 * byte offset (HTTP Range) so an interrupted download continues where it stopped.
 */
export class RegistryClient {
  private readonly base: string;
  private token?: string;

  constructor(private readonly options: RegistryClientOptions) {
    this.base = `${options.insecure ? 'http' : 'https'}://${options.registry}/v2/${options.repository}`;
  }

  async getManifest(digest: string, signal?: AbortSignal): Promise<ManifestResponse> {
    const res = await this.request(`/manifests/${digest}`, { Accept: MANIFEST_ACCEPT }, signal);
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_MANIFEST_BYTES) throw new OciError('TooLarge', `manifest ${digest} is ${length} bytes; refused`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > MAX_MANIFEST_BYTES) throw new OciError('TooLarge', `manifest ${digest} is ${bytes.length} bytes; refused`);
    return { bytes, mediaType: (res.headers.get('content-type') ?? '').split(';')[0].trim() };
  }

  openBlob: OpenBlob = async (digest, offset, signal) => {
    const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    const res = await this.request(`/blobs/${digest}`, headers, signal);
    if (!res.body) throw new OciError('Unavailable', `blob ${digest}: empty response`, true);
    const start = res.status === 206 ? parseRangeStart(res.headers.get('content-range')) : 0;
    return { stream: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), offset: start };
  };

  /** `length` bytes of a blob from `offset` (HTTP Range); refuses a registry that ignores the range. */
  async getRange(digest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const res = await this.request(`/blobs/${digest}`, { Range: `bytes=${offset}-${offset + length - 1}` }, signal);
    if (res.status !== 206 || parseRangeStart(res.headers.get('content-range')) !== offset) {
      await res.body?.cancel();
      // Not retryable: a registry that ignores ranges does so again.
      throw new OciError('Unavailable', `blob ${digest}: the registry did not serve the range ${offset}+${length}`);
    }
    try {
      return Buffer.from(await res.arrayBuffer());
    } catch (err) {
      // The connection closed mid-body (fetch rejects with "terminated"): a network error, retryable.
      signal?.throwIfAborted();
      throw new OciError('Unavailable', `blob ${digest}: the range ${offset}+${length} was cut off: ${(err as Error).message}`, true);
    }
  }

  /**
   * The referrers of a manifest (OCI distribution spec 1.1, GET /v2/<name>/referrers/<digest>, an
   * image index), filtered by artifactType; undefined when the registry does not serve the API (404).
   */
  async getReferrers(digest: string, artifactType: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    const path = `/referrers/${digest}?artifactType=${encodeURIComponent(artifactType)}`;
    try {
      const res = await this.request(path, { Accept: MEDIA.ociIndex }, signal);
      const bytes = Buffer.from(await res.arrayBuffer());
      if (bytes.length > MAX_MANIFEST_BYTES) throw new OciError('TooLarge', `referrers of ${digest} are ${bytes.length} bytes; refused`);
      return bytes;
    } catch (err) {
      if (err instanceof OciError && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  private async request(path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    let res = await this.fetch(path, headers, signal);
    if (res.status === 401) {
      const challenge = res.headers.get('www-authenticate') ?? '';
      await res.body?.cancel();
      this.token = await this.fetchToken(challenge, signal);
      res = await this.fetch(path, headers, signal);
    }
    if (res.ok) return res;
    await res.body?.cancel();
    const what = `${this.options.registry}/${this.options.repository}${path}`;
    if (res.status === 404) throw new OciError('NotFound', `${what} not found in the registry`);
    if (res.status === 401 || res.status === 403) throw new OciError('Unauthorized', `${what}: registry refused access (HTTP ${res.status})`);
    if (res.status === 416) throw new OciError('Unavailable', `${what}: registry refused the resume range`, true);
    throw new OciError('Unavailable', `${what}: registry answered HTTP ${res.status}`, res.status >= 500 || res.status === 429);
  }

  private async fetch(path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    const all: Record<string, string> = { 'User-Agent': this.options.userAgent ?? 'edgeplane-agent', ...headers };
    if (this.token) all.Authorization = `Bearer ${this.token}`;
    // The timeout covers the response headers only: a large blob body may stream for a long time.
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new Error('timed out waiting for the registry')), this.options.timeoutMs ?? 30_000);
    const onAbort = () => ctl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await fetch(`${this.base}${path}`, { headers: all, signal: ctl.signal, redirect: 'follow' });
    } catch (err) {
      signal?.throwIfAborted();
      throw new OciError('Unavailable', `cannot reach registry ${this.options.registry}: ${(err as Error).message}`, true);
    } finally {
      clearTimeout(timer);
    }
  }

  private async fetchToken(challenge: string, signal?: AbortSignal): Promise<string> {
    const params = parseBearerChallenge(challenge);
    if (!params?.realm)
      throw new OciError(
        'Unauthorized',
        `registry ${this.options.registry} requires authentication this agent does not support (${challenge || 'no challenge'})`,
      );
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${this.options.repository}:pull`);
    let res: Response;
    try {
      res = await fetch(url, { signal: withTimeout(signal, this.options.timeoutMs ?? 30_000) });
    } catch (err) {
      signal?.throwIfAborted();
      throw new OciError('Unavailable', `cannot reach token service ${url.origin}: ${(err as Error).message}`, true);
    }
    if (!res.ok) throw new OciError('Unauthorized', `token service ${url.origin} refused anonymous pull (HTTP ${res.status})`);
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new OciError('Unauthorized', `token service ${url.origin} returned no token`);
    return token;
  }
}

/** Parses `Bearer realm="...",service="...",scope="..."`; undefined for other schemes. */
export function parseBearerChallenge(header: string): Record<string, string> | undefined {
  const m = /^\s*Bearer\s+(.*)$/i.exec(header);
  if (!m) return undefined;
  const out: Record<string, string> = {};
  for (const part of m[1].matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) out[part[1].toLowerCase()] = part[2];
  return out;
}

function parseRangeStart(header: string | null): number {
  const m = /^bytes (\d+)-/.exec(header ?? '');
  return m ? Number(m[1]) : 0;
}

function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}
