import * as protocol from '@edgeplane/protocol';
import { KINDS, type KindInfo } from '@edgeplane/protocol';
import type { z } from 'zod';
import type { RawRequest, RawResponse } from './http-client.js';
import { mutate, PROTO_KEYS } from './mutate.js';
import type { Prng } from './prng.js';
import { type GenContext, generateValid } from './schema-gen.js';
import { garbageSegment, queryString, tainted } from './url-garbage.js';

/** What the fuzzer knows before it starts: credentials, names that exist, names it must not break. */
export interface World {
  tokens: { admin: string; operator: string; viewer: string };
  /** Existing names per plural (setup objects, fuzz hosts). */
  names: Record<string, string[]>;
  /** Objects made to be deleted: DELETE aims at these (the other setup objects stay for the whole run). */
  disposable: Record<string, string[]>;
  /** Writes (PUT/PATCH/DELETE/actions) to these `<plural>/<name>` are aimed elsewhere: the fuzzer's own credentials and agents. */
  protectedNames: Set<string>;
  /** A registration token secret (may be revoked by the fuzz itself: then registrations are refused, which is fine). */
  registrationSecret: string;
  /** Signs register/pairing proofs for a device UID, so some agent-endpoint bodies are fully valid. */
  proof(deviceUid: string): Promise<{ publicKey: unknown; proof: string }>;
  /** Paths and methods from the served OpenAPI document, `{param}` placeholders kept. */
  openapi: { path: string; method: string; bodySchema?: string }[];
}

export interface PlannedRequest extends RawRequest {
  index: number;
  what: string;
  role: 'admin' | 'operator' | 'viewer' | 'none' | 'garbage';
  /** False for the valid requests mixed in to reach deeper state (a created cluster, a session). */
  malformed: boolean;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const ODD_METHODS = ['OPTIONS', 'HEAD', 'PROPFIND', 'MKCOL', 'PURGE', 'LINK', 'SEARCH', 'QUERY', 'COPY', 'LOCK'];
const PLAIN_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Fills in `metadata.name` and references so a generated input can succeed (create) or target a path name. */
function inputFor(kind: KindInfo, ctx: GenContext, name: string): { value: unknown; valid: boolean } {
  const g = generateValid(kind.input as z.ZodType, ctx);
  const v = g.value as { metadata?: { name?: string } };
  if (v && typeof v === 'object' && v.metadata && typeof v.metadata === 'object') v.metadata.name = name;
  return { value: v, valid: (kind.input as z.ZodType).safeParse(v).success };
}

/** The request fuzzer: request `index` is a pure function of (seed, index, world), so any failure can be replayed. */
export class HttpFuzzer {
  constructor(private world: World) {}

  private ctx(r: Prng, index: number): GenContext {
    const w = this.world;
    const all = Object.values(w.names).flat();
    let freshCount = 0;
    const byKey: Record<string, string> = {
      host: 'edgehosts',
      hosts: 'edgehosts',
      appliance: 'edgehosts',
      site: 'sites',
      project: 'projects',
      user: 'users',
      profile: 'clusterprofiles',
      osprofile: 'clusterprofiles',
      cluster: 'clusters',
    };
    return {
      rng: r,
      names: (key) => {
        const [parent, last] = key.toLowerCase().split('.').slice(-2);
        const plural = last === undefined ? byKey[parent!] : last === 'name' ? byKey[parent!] : byKey[last];
        const own = plural ? (w.names[plural] ?? []) : [];
        return own.length ? own : all;
      },
      // Deterministic per request, so a later request can name what an earlier one may have created.
      fresh: () => (freshCount++ === 0 ? `fz-${index.toString(36)}` : `fz-${index.toString(36)}-${freshCount}`),
    };
  }

  private role(r: Prng): PlannedRequest['role'] {
    const role = r.weighted<PlannedRequest['role']>([
      [80, 'admin'],
      [8, 'operator'],
      [6, 'viewer'],
      [3, 'none'],
      [3, 'garbage'],
    ]);
    if (role === 'none' || role === 'garbage') r.taint();
    return role;
  }

  private authHeader(role: PlannedRequest['role'], r: Prng): Record<string, string> {
    const t = this.world.tokens;
    switch (role) {
      case 'admin':
        return { authorization: `Bearer ${t.admin}` };
      case 'operator':
        return { authorization: `Bearer ${t.operator}` };
      case 'viewer':
        return { authorization: `Bearer ${t.viewer}` };
      case 'none':
        return {};
      default:
        return {
          authorization: r.pick([
            'Bearer ',
            'Bearer x',
            `Bearer ${t.admin}x`,
            `Bearer ${t.admin.slice(0, -1)}`,
            'Basic YWRtaW46YWRtaW4=',
            `bearer ${t.admin}`,
            `Bearer ${'a'.repeat(5000)}`,
            'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.',
          ]),
        };
    }
  }

  /** Serializes a (mutated) body with a content type, sometimes a wrong one. */
  private encode(r: Prng, value: unknown, mutateIt: boolean, patch = false): { body?: string; headers: Record<string, string>; what: string } {
    let text: string;
    let what = 'valid body';
    if (mutateIt) {
      const m = mutate(r, value);
      what = m.what;
      text = m.raw ?? JSON.stringify(m.value) ?? '';
    } else text = JSON.stringify(value) ?? '';
    const ct = r.weighted<string | undefined>([
      [80, patch ? r.pick(['application/merge-patch+json', 'application/json']) : 'application/json'],
      [3, 'application/json; charset=utf-8'],
      [2, 'text/plain'],
      [2, 'application/x-www-form-urlencoded'],
      [2, 'multipart/form-data; boundary=x'],
      [2, undefined],
      [1, 'application/json; charset=latin1'],
      [1, 'application/xml'],
      [1, 'APPLICATION/JSON'],
      [1, 'application/json-patch+json'],
      [1, 'application/octet-stream'],
      [1, '*/*'],
      [1, 'application/json, text/plain'],
    ]);
    const headers: Record<string, string> = {};
    if (ct !== 'application/json' && ct !== 'application/merge-patch+json') r.taint();
    if (ct !== undefined) headers['content-type'] = ct;
    if (ct !== 'application/json' && ct !== 'application/merge-patch+json') what += `, content-type ${ct ?? 'none'}`;
    return { body: text, headers, what };
  }

  /**
   * A name for a path: a setup object (never for DELETE, so targets stay for the whole run), what an
   * earlier request may have created (`fz-<index>`), a fresh name, or garbage.
   */
  private nameFor(r: Prng, plural: string, write: boolean, ctx: GenContext, index: number, del = false): string {
    const existing = del
      ? (this.world.disposable[plural] ?? [])
      : (this.world.names[plural] ?? []).filter((n) => !(write && this.world.protectedNames.has(`${plural}/${n}`)));
    return r.weighted<() => string>([
      [5, () => (existing.length ? r.pick(existing) : ctx.fresh())],
      [index > 0 ? 3 : 0, () => `fz-${r.int(0, index - 1).toString(36)}`],
      [2, () => ctx.fresh()],
      [3, () => garbageSegment(r)],
    ])();
  }

  /** A generic `/api/v1/<plural>[/<name>[/<verb>]]` request built from the kind registry. */
  private genericRequest(
    r: Prng,
    ctx: GenContext,
    index: number,
  ): { method: string; path: string; body?: string; headers: Record<string, string>; what: string } {
    const kind = r.pick(KINDS);
    const plural = r.weighted<() => string>([
      [20, () => kind.plural],
      [1, () => tainted(r, kind.singular)],
      [1, () => tainted(r, kind.kind)],
      [1, () => tainted(r, kind.plural.toUpperCase())],
      [1, () => garbageSegment(r)],
    ])();
    const op = r.weighted<string>([
      [3, 'list'],
      [5, 'create'],
      [2, 'get'],
      [3, 'put'],
      [4, 'patch'],
      [1, 'delete'],
      [3, 'verb'],
    ]);
    const mutateIt = r.chance(0.75);
    switch (op) {
      case 'list':
        return { method: 'GET', path: `/api/v1/${plural}${queryString(r, [])}`, headers: {}, what: 'list' };
      case 'create': {
        const name = r.chance(0.85) ? ctx.fresh() : this.nameFor(r, kind.plural, true, ctx, index);
        const { value } = inputFor(kind, ctx, name);
        const e = this.encode(r, value, mutateIt);
        return { method: 'POST', path: `/api/v1/${plural}`, ...e };
      }
      case 'get':
        return { method: 'GET', path: `/api/v1/${plural}/${this.nameFor(r, kind.plural, false, ctx, index)}${queryString(r, [])}`, headers: {}, what: 'get' };
      case 'put': {
        const name = this.nameFor(r, kind.plural, true, ctx, index);
        const { value } = inputFor(kind, ctx, r.chance(0.8) ? name : ctx.fresh());
        const e = this.encode(r, value, mutateIt);
        return { method: 'PUT', path: `/api/v1/${plural}/${name}`, ...e };
      }
      case 'patch': {
        const name = this.nameFor(r, kind.plural, true, ctx, index);
        const { value } = inputFor(kind, ctx, name);
        const v = value as Record<string, unknown>;
        // A merge patch is a part of the object: its spec, its labels, or a whole object.
        const part = r.pick<unknown>([
          { spec: v?.spec },
          { metadata: { labels: (v?.metadata as Record<string, unknown>)?.labels ?? { a: 'b' } } },
          v,
          { spec: null },
          {},
        ]);
        const e = this.encode(r, part, mutateIt, true);
        return { method: 'PATCH', path: `/api/v1/${plural}/${name}`, ...e };
      }
      case 'delete':
        return { method: 'DELETE', path: `/api/v1/${plural}/${this.nameFor(r, kind.plural, true, ctx, index, true)}`, headers: {}, what: 'delete' };
      default: {
        const verb = r.weighted<() => string>([
          [6, () => (kind.verbs.length ? r.pick(kind.verbs) : r.pick(KINDS.flatMap((k) => k.verbs)))],
          [2, () => tainted(r, r.pick(KINDS.flatMap((k) => k.verbs)))],
          [4, () => tainted(r, r.pick(PROTO_KEYS))],
          [2, () => garbageSegment(r)],
          [1, () => tainted(r, r.pick(['installer', 'sessions', 'reset', 'plan', 'kubeconfig', 'revisions', 'vms', 'attach', 'recording', 'reject-key']))],
        ])();
        const name = this.nameFor(r, kind.plural, true, ctx, index);
        const withBody = r.chance(0.4);
        const e = withBody ? this.encode(r, r.pick<unknown>([{}, { reason: 'fuzz' }, { rotate: true }, [], null]), mutateIt) : { headers: {}, what: 'no body' };
        return { method: 'POST', path: `/api/v1/${plural}/${name}/${verb}`, ...e };
      }
    }
  }

  /** A request to a path of the OpenAPI document, its body generated from the zod schema the document names. */
  private async openapiRequest(
    r: Prng,
    ctx: GenContext,
    index: number,
  ): Promise<{ method: string; path: string; body?: string; headers: Record<string, string>; what: string }> {
    // Operations that take a body (writes) are picked three times as often as reads.
    const op = r.weighted(this.world.openapi.map((o) => [o.bodySchema ? 3 : 1, o] as const));
    const plural = op.path.split('/')[3] ?? '';
    const write = WRITE_METHODS.has(op.method);
    const path = op.path.replace(/\{(\w+)\}/g, (_m, p: string) => {
      // Sessions may open on the fuzzing agents' hosts (protected from other writes).
      if (p === 'name') return this.nameFor(r, plural, write && !op.path.endsWith('/sessions'), ctx, index, op.method === 'DELETE');
      if (p === 'revision') return r.pick(['1', '2', '0', '-1', '1.5', '999999999999999999999999', String(2 ** 31), 'x', garbageSegment(r)]);
      if (p === 'code') return r.pick(['ABCDEFGH', '2345-6789', 'abcdefgh', 'IIIIOOOO', garbageSegment(r)]);
      return r.chance(0.5) ? garbageSegment(r) : ctx.fresh();
    });
    const query = queryString(
      r,
      op.path.includes('pairings/{id}') ? ['waitSeconds'] : op.path.includes('installer') ? ['format'] : ['target', 'actor', 'action'],
    );
    // A long-poll with a real session would hold a worker for 30 s; garbage ids answer at once.
    const headers: Record<string, string> = {};
    if (!op.bodySchema) {
      const e = r.chance(0.2) ? this.encode(r, { x: 1 }, true) : { headers: {}, what: 'no body' };
      return { method: op.method, path: `${path}${query}`, ...e, headers: { ...headers, ...e.headers } };
    }
    const schema = schemaNamed(op.bodySchema);
    let value: unknown = {};
    if (schema) value = generateValid(schema, ctx).value;
    if (op.bodySchema === 'RegisterRequest' || op.bodySchema === 'PairingStartRequest') {
      const v = value as Record<string, unknown>;
      const uid = `fz${r.hex(10)}`;
      const p = await this.world.proof(uid);
      Object.assign(v, { deviceUid: uid, ...p });
      if (op.bodySchema === 'RegisterRequest') {
        delete v.pairing;
        delete v.pairingKey;
        v.token = r.chance(0.7) ? this.world.registrationSecret : `eprt_${r.hex(32)}`;
      }
    }
    const e = this.encode(r, value, r.chance(0.75));
    return { method: op.method, path: `${path}${query}`, ...e };
  }

  async plan(index: number, r: Prng): Promise<PlannedRequest> {
    const ctx = this.ctx(r, index);
    const role = this.role(r);
    const source = r.weighted<string>([
      [55, 'generic'],
      [40, 'openapi'],
      [5, 'odd'],
    ]);
    let req: { method: string; path: string; body?: string; headers: Record<string, string>; what: string };
    if (source === 'generic') req = this.genericRequest(r, ctx, index);
    else if (source === 'openapi') req = await this.openapiRequest(r, ctx, index);
    else {
      r.taint();
      req = {
        method: r.pick([...ODD_METHODS, ...PLAIN_METHODS]),
        path: r.pick([
          `/api/v1/${garbageSegment(r)}`,
          `/agent/v1/${garbageSegment(r)}`,
          '/api/v1',
          '/api/v1/',
          '//api//v1//edgehosts',
          '/api/v1/edgehosts/',
          `/api/v1/edgehosts/${garbageSegment(r)}/${garbageSegment(r)}/${garbageSegment(r)}`,
          '/api/v1/watch',
          '/agent/v1/connect',
          `/${garbageSegment(r)}`,
          '/healthz?%00',
          `/api/v1/whoami${queryString(r, [])}`,
          '/api/v1/console/summary',
          '*',
          `/api/v1/edgehosts?${'a=1&'.repeat(3000)}`,
          `/api/v1/${'x/'.repeat(500)}`,
        ]),
        headers: {},
        what: 'odd method or path',
      };
    }
    let method = req.method;
    // Now and then the right path with the wrong method.
    if (source !== 'odd' && r.chance(0.05)) {
      method = r.pick([...ODD_METHODS, ...PLAIN_METHODS]);
      r.taint();
    }
    let path = req.path;
    // The fuzzer must keep its own credentials and agents: writes to them go to an unknown name instead.
    if (method !== 'GET' && method !== 'HEAD') path = this.redirectProtected(path, ctx);
    const headers = { ...req.headers, ...this.authHeader(role, r) };
    if (r.chance(0.03)) r.taint();
    if (r.malformed && r.chance(0.03)) headers.accept = r.pick(['application/xml', 'text/event-stream', '*/*;q=0', '\u00e9'.normalize('NFC')]);
    const body = method === 'GET' || method === 'HEAD' ? (r.chance(0.05) ? req.body : undefined) : req.body;
    if (body === undefined) delete headers['content-type'];
    return { index, method, path, headers, body, role, what: `${source}: ${req.what}`, malformed: r.malformed };
  }

  private redirectProtected(path: string, ctx: GenContext): string {
    const seg = path.split('?')[0]!.split('/');
    // /api/v1/<plural>/<name>[/...]: also catch encoded spellings of the same name.
    // Remote sessions on the fuzzing agents' hosts are fine: they reach the agents as session.open frames.
    if (seg[5] === 'sessions' && seg.length === 6) return path;
    if (seg.length >= 5 && (seg[1] === 'api' || seg[1] === 'agent')) {
      let name = seg[4]!;
      try {
        name = decodeURIComponent(name);
      } catch {
        // Not valid percent-encoding: cannot name a protected object.
      }
      for (const plural of [seg[3]!, ...KINDS.map((k) => k.plural)])
        if (this.world.protectedNames.has(`${plural.toLowerCase()}/${name.toLowerCase()}`)) {
          seg[4] = ctx.fresh();
          return seg.join('/') + (path.includes('?') ? path.slice(path.indexOf('?')) : '');
        }
    }
    return path;
  }
}

/** The zod schema an OpenAPI component stands for: `<Kind>Input` from the kinds registry, else the protocol export of that name. */
export function schemaNamed(component: string): z.ZodType | undefined {
  const kind = KINDS.find((k) => `${k.kind}Input` === component);
  if (kind) return kind.input as z.ZodType;
  const s = (protocol as Record<string, unknown>)[component];
  return s && typeof s === 'object' && '_zod' in s ? (s as z.ZodType) : undefined;
}

/**
 * Routes the server serves that the OpenAPI document does not list: fuzzed all the same, with the
 * body schema their handlers parse.
 */
export const ROUTES_BEYOND_OPENAPI: World['openapi'] = [
  { path: '/api/v1/clusters/{name}/kubeconfig', method: 'GET' },
  { path: '/api/v1/clusters/{name}/plan', method: 'POST', bodySchema: 'ClusterInput' },
  { path: '/api/v1/edgehosts/{name}/reset', method: 'POST' },
  { path: '/api/v1/clusterprofiles/{name}/revisions', method: 'GET' },
  { path: '/api/v1/clusterprofiles/{name}/revisions/{revision}', method: 'GET' },
  { path: '/api/v1/whoami', method: 'GET' },
  { path: '/api/v1/summary', method: 'GET' },
  { path: '/api/v1/watch', method: 'GET' },
];

/** Operations of the served OpenAPI document, with the component their JSON body refers to. */
export function openapiOperations(doc: { paths: Record<string, Record<string, unknown>> }): World['openapi'] {
  const out: World['openapi'] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const content = (op as { requestBody?: { content?: Record<string, { schema?: { $ref?: string } }> } }).requestBody?.content ?? {};
      const ref = Object.values(content)[0]?.schema?.$ref;
      out.push({ path, method: method.toUpperCase(), bodySchema: ref?.split('/').pop() });
    }
  }
  return out;
}

/** What a 2xx answer to a write changed: `<plural>/<name>` keys (path names and names in the answer). */
export function touchedBy(req: PlannedRequest, res: RawResponse): string[] {
  const out: string[] = [];
  const [pathOnly] = req.path.split('?');
  const seg = pathOnly!.split('/');
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  if (seg[1] === 'api' && seg[3]) {
    const plural = seg[3].toLowerCase();
    if (seg[4]) out.push(`${plural}/${decode(seg[4])}`);
  }
  try {
    const body = JSON.parse(res.text) as Record<string, unknown>;
    const meta = body?.metadata as { name?: string } | undefined;
    const kind = typeof body?.kind === 'string' ? KINDS.find((k) => k.kind === body.kind) : undefined;
    if (kind && meta?.name) out.push(`${kind.plural}/${meta.name}`);
    if (typeof body?.hostName === 'string') out.push(`edgehosts/${body.hostName}`);
    const spec = body?.spec as { nodes?: { host?: string }[]; host?: string; appliance?: string; user?: string } | undefined;
    for (const n of spec?.nodes ?? []) if (n?.host) out.push(`edgehosts/${n.host}`);
    if (spec?.host) out.push(`edgehosts/${spec.host}`);
    if (spec?.appliance) out.push(`edgehosts/${spec.appliance}`);
  } catch {
    // Not JSON (user-data, ISO): the path says what was touched.
  }
  return out;
}
