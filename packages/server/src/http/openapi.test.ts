import SwaggerParser from '@apidevtools/swagger-parser';
import { KINDS } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, testServer } from '../../../../test/support/server.js';

/** Fastify's `:name` path parameters as OpenAPI's `{name}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
/** Operational endpoints and the API (the console's static files are not part of it). */
const isApi = (url: string) => /^\/(api|agent)\//.test(url) || ['/healthz', '/readyz', '/metrics'].includes(url);

/** The generic resource routes (`/api/v1/:plural/...`) serve every kind: one concrete route per kind (and verb). */
function concrete(routes: readonly { method: string; url: string }[]): { method: string; url: string }[] {
  return routes.flatMap((r) => {
    if (!r.url.includes(':plural')) return [r];
    return KINDS.flatMap((k) => {
      if (r.method === 'POST' && r.url === '/api/v1/:plural' && !k.creatable) return [];
      const url = r.url.replace(':plural', k.plural);
      return url.endsWith('/:verb') ? k.verbs.map((v) => ({ method: r.method, url: url.replace(':verb', v) })) : [{ method: r.method, url }];
    });
  });
}

describe('the OpenAPI document at /api/v1/openapi.json', () => {
  let t: TestServer;
  let doc: { openapi: string; paths: Record<string, Record<string, unknown>> };
  beforeAll(async () => {
    t = await testServer('sqlite');
    doc = await (await fetch(`${t.url}/api/v1/openapi.json`)).json();
  });
  afterAll(async () => t?.close());

  it('passes a standard OpenAPI 3.1 validator', async () => {
    expect(doc.openapi).toBe('3.1.0');
    // swagger-parser validates against the official 3.1 schema and resolves every $ref.
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
  });

  it('describes every route the server serves, with its method', () => {
    const api = concrete(t.server.routes).filter((r) => isApi(r.url));
    expect(api.length).toBeGreaterThan(50);
    const missing = api.filter((r) => !doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()]).map((r) => `${r.method} ${openApiPath(r.url)}`);
    expect(missing).toEqual([]);
  });

  it('documents no route the server does not serve', () => {
    const served = new Set(concrete(t.server.routes).map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    const extra: string[] = [];
    for (const [path, item] of Object.entries<Record<string, unknown>>(doc.paths))
      for (const m of ['get', 'put', 'post', 'patch', 'delete']) if (item[m] && !served.has(`${m} ${path}`)) extra.push(`${m} ${path}`);
    expect(extra).toEqual([]);
  });
});
