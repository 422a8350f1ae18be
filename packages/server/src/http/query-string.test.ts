import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { parseQueryString } from './query-string.js';

describe('parseQueryString', () => {
  it('keeps the first value of a repeated key and only ever returns strings', () => {
    const q = parseQueryString('a=1&a=2&b=&c&__proto__=x&constructor=y&bad=%ff%zz');
    expect(Object.entries(q)).toEqual([
      ['a', '1'],
      ['b', ''],
      ['c', ''],
      ['__proto__', 'x'],
      ['constructor', 'y'],
      ['bad', expect.any(String)],
    ]);
    expect(Object.getPrototypeOf(q)).toBeNull();
    expect(Object.values(q).every((v) => typeof v === 'string')).toBe(true);
  });
});

describe.each(DIALECTS)('repeated query keys through the API on %s', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer(dialect);
  });
  afterAll(async () => t?.close());

  const get = async (path: string) => {
    const res = await fetch(`${t.url}${path}`, { headers: { authorization: `Bearer ${t.admin}` } });
    return { status: res.status, body: (await res.json()) as { error?: { code: string }; items?: unknown[] } };
  };

  it('answers a repeated key by its first value, never 500', async () => {
    await t.api('POST', '/api/v1/projects', { metadata: { name: 'p1' }, spec: {} });
    await t.api('POST', '/api/v1/projects', { metadata: { name: 'p2' }, spec: {} });
    // These handlers called .split() or hashed the value: an array made them throw.
    expect((await get('/api/v1/events?fieldSelector=involvedObject.kind%3DEdgeHost&fieldSelector')).status).toBe(200);
    expect((await get('/api/v1/edgehosts?fieldSelector=bogus&fieldSelector=status.state%3Dready')).body.error?.code).toBe('InvalidFieldSelector');
    const attach = await get('/api/v1/remotesessions/nope/attach?ticket=a&ticket=b');
    expect(attach.status).toBe(401);
    expect(attach.body.error?.code).toBe('Unauthenticated');
    const page = await get('/api/v1/projects?limit=1&limit=abc');
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(1);
    expect((await get('/api/v1/projects?limit=abc&limit=1')).body.error?.code).toBe('ValidationFailed');
    expect((await get('/api/v1/audit?limit=1&limit=x')).status).toBe(200);
  });
});
