import type { ErrorBody, Whoami } from '@edgeplane/protocol';

/** Any resource as the API returns it; pages narrow it with the protocol's types where they need fields. */
export interface Resource {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    uid: string;
    project: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion: string;
    createdAt: string;
    [k: string]: unknown;
  };
  spec: Record<string, any>;
  status: Record<string, any>;
}
export interface ResourceList {
  items: Resource[];
  metadata: { continue?: string };
}

/** An API error with its stable code (see docs/errors.md) and, for validation, the field issues. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'edgeplane.token';
/** Kept in sessionStorage: gone when the tab closes, never sent anywhere but this server. */
export const tokenStore = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export async function request<T>(method: string, path: string, body?: unknown, token = tokenStore.get()): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, 'Unreachable', `cannot reach the server: ${(err as Error).message}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(res.status, 'BadResponse', `the server answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const e = (json as ErrorBody | undefined)?.error;
    throw new ApiError(res.status, e?.code ?? 'Unknown', e?.message ?? `HTTP ${res.status}`, e?.details as Record<string, unknown> | undefined);
  }
  return json as T;
}

export interface ListParams {
  limit?: number;
  continue?: string;
  labelSelector?: string;
  fieldSelector?: string;
}
export function listPath(plural: string, p: ListParams = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `/api/v1/${plural}${s ? `?${s}` : ''}`;
}

export interface Summary {
  hosts: { total: number; byState: Record<string, number>; byConnectivity: Record<string, number> };
  clusters?: { total: number; byPhase: Record<string, number> };
  recentEvents: Resource[];
}

export const api = {
  whoami: (token?: string) => request<Whoami>('GET', '/api/v1/whoami', undefined, token),
  summary: () => request<Summary>('GET', '/api/v1/summary'),
  list: (plural: string, p?: ListParams) => request<ResourceList>('GET', listPath(plural, p)),
  /**
   * Every page of a list as one list (for pickers that filter in the browser); stops at `max` items.
   * Same shape as a page, so the watch keeps it live like any cached list.
   */
  async listAll(plural: string, p: Omit<ListParams, 'limit' | 'continue'> = {}, max = 20_000): Promise<ResourceList> {
    const items: Resource[] = [];
    let next: string | undefined;
    do {
      const page = await api.list(plural, { ...p, limit: 1000, continue: next });
      items.push(...page.items);
      next = page.metadata.continue;
    } while (next && items.length < max);
    return { items, metadata: {} };
  },
  get: (plural: string, name: string) => request<Resource>('GET', `/api/v1/${plural}/${encodeURIComponent(name)}`),
  create: (plural: string, body: unknown) => request<Resource>('POST', `/api/v1/${plural}`, body),
  /** JSON merge patch (RFC 7386): arrays such as spec.nodes are replaced whole. */
  patch: (plural: string, name: string, body: unknown) => request<Resource>('PATCH', `/api/v1/${plural}/${encodeURIComponent(name)}`, body),
  remove: (plural: string, name: string) => request<Resource>('DELETE', `/api/v1/${plural}/${encodeURIComponent(name)}`),
  action: (plural: string, name: string, verb: string, body?: unknown) =>
    request<Resource>('POST', `/api/v1/${plural}/${encodeURIComponent(name)}/${verb}`, body),
};

/** Reads a dotted path ("status.state") out of an object, as the KINDS columns describe. */
export function pick(obj: unknown, path: string): unknown {
  let v: any = obj;
  for (const p of path.split('.')) v = v?.[p];
  return v;
}

export function formatValue(v: unknown): string {
  if (v === undefined || v === null || v === '') return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) return new Date(v).toLocaleString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
