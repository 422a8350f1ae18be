/**
 * Test helpers for the CLI (used only by *.test.ts): a FAKE in-memory API server that mimics the
 * REST contract of /api/v1 closely enough for the CLI's own tests (lists with continue, error
 * bodies, 401), and a runner that calls main() in-process with captured output. End-to-end tests
 * against the real server live in test/e2e.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { findKind } from '@edgeplane/protocol';
import { afterAll } from 'vitest';
import type { Resource } from './api-client.js';
import { main } from './index.js';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body?: unknown;
}

export interface FakeApi {
  url: string;
  token: string;
  /** plural -> name -> resource */
  store: Map<string, Map<string, Resource>>;
  requests: RecordedRequest[];
  put(plural: string, resource: Resource): void;
  close(): Promise<void>;
}

export async function startFakeApi(options: { token?: string; pageSize?: number } = {}): Promise<FakeApi> {
  const token = options.token ?? 'test-token';
  const pageSize = options.pageSize ?? 2;
  const store = new Map<string, Map<string, Resource>>();
  const requests: RecordedRequest[] = [];
  let version = 0;
  const bucket = (plural: string) => store.get(plural) ?? store.set(plural, new Map()).get(plural)!;
  const put = (plural: string, r: Resource) => {
    const kind = findKind(plural)!;
    // Like the server, store the spec with the schema's defaults applied.
    const spec = kind.spec.safeParse(r.spec ?? {});
    bucket(kind.plural).set(r.metadata.name, {
      apiVersion: 'edgeplane.io/v1',
      kind: kind.kind,
      status: {},
      ...r,
      spec: (spec.success ? spec.data : r.spec) as Record<string, unknown>,
      metadata: {
        project: 'default',
        labels: {},
        annotations: {},
        generation: 1,
        resourceVersion: String(++version),
        createdAt: new Date().toISOString(),
        uid: `uid-${version}`,
        ...r.metadata,
      },
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const text = await new Promise<string>((resolve) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => resolve(data));
    });
    const body = text ? JSON.parse(text) : undefined;
    requests.push({ method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), body });
    const send = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    const fail = (status: number, code: string, message: string, details?: unknown) =>
      send(status, { error: { code, message, ...(details ? { details } : {}) } });

    if (req.headers.authorization !== `Bearer ${token}`) return fail(401, 'Unauthenticated', 'missing or invalid bearer token');
    const [, api, v1, plural, name, verb] = url.pathname.split('/');
    const kind = plural ? findKind(plural) : undefined;
    if (api !== 'api' || v1 !== 'v1' || !kind || kind.plural !== plural) return fail(404, 'UnknownKind', `unknown kind ${plural}`);
    const items = bucket(plural);

    if (!name && req.method === 'GET') {
      const selector = url.searchParams.get('labelSelector');
      const limit = Number(url.searchParams.get('limit') ?? pageSize);
      const after = url.searchParams.get('continue');
      if (after && !items.has(after)) return fail(400, 'InvalidContinueToken', 'the continue token is not one this server issued');
      let all = [...items.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      if (selector) {
        const [k, v] = selector.split('=');
        all = all.filter((r) => (r.metadata.labels as Record<string, string>)?.[k] === v);
      }
      if (after) all = all.filter((r) => r.metadata.name > after);
      const page = all.slice(0, limit);
      const more = all.length > limit;
      return send(200, {
        apiVersion: 'edgeplane.io/v1',
        kind: `${kind.kind}List`,
        items: page,
        metadata: more ? { continue: page[page.length - 1].metadata.name } : {},
      });
    }
    if (!name && req.method === 'POST') {
      if (!kind.creatable) return fail(405, 'MethodNotAllowed', `${kind.plural} cannot be created through the API`);
      const n = body?.metadata?.name;
      if (typeof n !== 'string' || !/^[a-z0-9-]+$/.test(n)) {
        return fail(400, 'ValidationFailed', 'invalid request: metadata.name: invalid', { issues: [{ path: 'metadata.name', message: 'must be lower-case' }] });
      }
      if (items.has(n)) return fail(409, 'AlreadyExists', `${kind.kind} ${n} already exists`);
      const status = kind.kind === 'RegistrationToken' ? { token: 'ert_secret123', prefix: 'ert_secr', state: 'active', uses: 0 } : {};
      put(plural, { ...body, status });
      return send(201, items.get(n));
    }
    const existing = name ? items.get(name) : undefined;
    if (!existing) return fail(404, 'NotFound', `${kind.kind} ${name} not found`);
    if (verb && req.method === 'POST') {
      if (!kind.verbs.includes(verb)) return fail(404, 'NotFound', `no action ${verb}`);
      existing.status = { ...existing.status, state: { approve: 'ready', reject: 'rejected', revoke: 'revoked' }[verb] };
      return send(200, existing);
    }
    if (req.method === 'GET') return send(200, existing);
    if (req.method === 'PUT') {
      const m = existing.metadata;
      const { resourceVersion: _, ...kept } = m;
      put(plural, { ...existing, spec: body.spec, metadata: { ...kept, labels: body.metadata.labels ?? m.labels, generation: Number(m.generation) + 1 } });
      return send(200, items.get(name!));
    }
    if (req.method === 'DELETE') {
      items.delete(name!);
      return send(200, existing);
    }
    return fail(405, 'MethodNotAllowed', 'method not allowed');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    store,
    requests,
    put,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fresh, empty config location: tests never read or write the real ~/.config. */
// Temp config dirs made for tests; removed after each test file so runs leave nothing in /tmp.
const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

export function tempConfigEnv(): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-cli-'));
  tempDirs.push(dir);
  return { HOME: dir, EDGEPLANE_CONFIG: join(dir, 'config.yaml') };
}

/** Runs `edgeplane <args>` in-process. */
export async function runCli(
  args: string[],
  options: { env?: Record<string, string | undefined>; stdin?: string; waitForShutdown?: () => Promise<string>; tty?: boolean } = {},
): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'edgeplane', ...args], {
    stdout: { write: (s: string) => (stdout += s), isTTY: options.tty },
    stderr: { write: (s: string) => (stderr += s), isTTY: options.tty },
    stdin: Readable.from([options.stdin ?? '']),
    env: options.env ?? tempConfigEnv(),
    waitForShutdown: options.waitForShutdown ?? (() => Promise.resolve('SIGTERM')),
  });
  return { code, stdout, stderr };
}
