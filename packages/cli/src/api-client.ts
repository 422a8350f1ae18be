import { isCertificateError, type ServerTrust, serverTrust } from '@edgeplane/agent/tls';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER } from '@edgeplane/protocol/protocol-version';
import { type HttpAnswer, requestText } from './http-request.js';

/** Page size listAll asks for when the caller gives none: the most the API serves per page. */
const LIST_ALL_PAGE_SIZE = 1000;

/**
 * A small typed wrapper over the Edgeplane REST API (`/api/v1`), over node:http(s) (http-request.ts;
 * the CA file's certificates when one is given). It knows the URL layout and the error body shape, nothing about individual kinds.
 */

/** A resource as the CLI handles it: the Kubernetes-shaped envelope, contents left open. */
export interface Resource {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; [key: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ResourceList {
  apiVersion: string;
  kind: string;
  items: Resource[];
  metadata: { continue?: string };
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

/** The server answered with an error body `{error: {code, message, details}}` (or something unexpected). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The server could not be reached at all. */
export class NetworkError extends Error {
  constructor(
    readonly server: string,
    cause: unknown,
  ) {
    super(
      isCertificateError(cause)
        ? `the TLS certificate of the Edgeplane server at ${server} is not trusted: ${describeCause(cause)} (pass --ca-file with the CA that signed it, or set EDGEPLANE_CA_FILE)`
        : `cannot reach the Edgeplane server at ${server}: ${describeCause(cause)} (is it running, and is the URL right?)`,
    );
    this.name = 'NetworkError';
  }
}

function describeCause(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  // An error may wrap the socket error (as fetch does: "fetch failed"), the useful part in `cause`.
  const inner = (cause as { cause?: unknown }).cause;
  if (inner instanceof Error) {
    return inner.message || String((inner as { code?: string }).code ?? 'network error');
  }
  return cause.message;
}

export interface ApiClientOptions {
  server: string;
  token?: string;
  /** PEM file of CAs trusted for an https server, besides the system store. */
  caFile?: string;
}

export class ApiClient {
  readonly server: string;
  private readonly token?: string;
  /** CAs for this server (requests, session WebSockets and raw downloads use them). */
  readonly trust: ServerTrust;

  constructor(options: ApiClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    this.token = options.token;
    // An unreadable CA file throws a message naming it; the CLI prints it without a stack.
    this.trust = serverTrust(options.caFile);
  }

  /** Sends a request to `/api/v1/<path>` and returns the parsed JSON body; throws ApiError or NetworkError. */
  async request<T>(
    method: string,
    path: string,
    options: { query?: Record<string, string | number | undefined>; body?: unknown; signal?: AbortSignal } = {},
  ): Promise<T> {
    const url = new URL(`${this.server}/api/v1/${path.replace(/^\/+/, '')}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    }
    // The server refuses a client of another protocol major (ProtocolVersionUnsupported) with both versions named.
    const headers: Record<string, string> = { accept: 'application/json', [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION) };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';

    let response: HttpAnswer;
    try {
      response = await requestText(url, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
        ca: this.trust.ca,
      });
    } catch (err) {
      throw new NetworkError(this.server, err);
    }
    const text = response.text;
    if (!response.ok) throw toApiError(response, text);
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(response.status, `HTTP${response.status}`, `the server answered ${method} ${url.pathname} with a body that is not JSON`);
    }
  }

  list(plural: string, options: ListOptions = {}): Promise<ResourceList> {
    return this.request<ResourceList>('GET', plural, {
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        limit: options.limit,
        continue: options.continue,
      },
    });
  }

  /** Lists every page (from `continue` if given), following `metadata.continue`; `limit` is the page size. */
  async listAll(plural: string, options: ListOptions = {}): Promise<ResourceList> {
    // Without a page size, the server's largest (1,000): one round trip per thousand, not per default page of 500.
    options = { limit: LIST_ALL_PAGE_SIZE, ...options };
    let page = await this.list(plural, options);
    const items = [...page.items];
    const seen = new Set<string>();
    while (page.metadata?.continue) {
      const token = page.metadata.continue;
      // A server handing out the same token twice would loop forever.
      if (seen.has(token)) throw new ApiError(0, 'InvalidContinueToken', `the server repeated continue token ${token}`);
      seen.add(token);
      page = await this.list(plural, { ...options, continue: token });
      items.push(...page.items);
    }
    return { apiVersion: page.apiVersion, kind: page.kind, items, metadata: {} };
  }

  get(plural: string, name: string): Promise<Resource> {
    return this.request<Resource>('GET', `${plural}/${encodeURIComponent(name)}`);
  }

  /** Returns the resource, or undefined when the server answers NotFound. */
  async find(plural: string, name: string): Promise<Resource | undefined> {
    try {
      return await this.get(plural, name);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  create(plural: string, body: unknown): Promise<Resource> {
    return this.request<Resource>('POST', plural, { body });
  }

  replace(plural: string, name: string, body: unknown): Promise<Resource> {
    return this.request<Resource>('PUT', `${plural}/${encodeURIComponent(name)}`, { body });
  }

  delete(plural: string, name: string): Promise<Resource | undefined> {
    return this.request<Resource | undefined>('DELETE', `${plural}/${encodeURIComponent(name)}`);
  }

  /** `POST /api/v1/<plural>/<name>/<verb>`, e.g. approve a host or revoke a token. */
  action(plural: string, name: string, verb: string, body: unknown = {}): Promise<Resource> {
    return this.request<Resource>('POST', `${plural}/${encodeURIComponent(name)}/${verb}`, { body });
  }
}

function toApiError(response: HttpAnswer, text: string): ApiError {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    const e = parsed?.error;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') {
      const details = e.details && typeof e.details === 'object' ? (e.details as Record<string, unknown>) : undefined;
      return new ApiError(response.status, e.code, e.message, details);
    }
  } catch {
    // Not our error body (a proxy in between, say): fall through to a generic error.
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(response.status, `HTTP${response.status}`, `${response.status} ${response.statusText}${snippet ? `: ${snippet}` : ''}`);
}
