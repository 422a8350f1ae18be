import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DIALECTS } from '../../../../test/support/db.js';
import { waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

interface Watch {
  ws: WebSocket;
  messages: any[];
  closed?: { code: number; reason: string; at: number };
}

function openWatch(t: TestServer, token: string, query = '?kinds=projects'): Promise<Watch> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/api/v1/watch${query}`, { headers: { authorization: `Bearer ${token}` } });
    const w: Watch = { ws, messages: [] };
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      w.messages.push(m);
      if (m.type === 'READY') resolve(w);
    });
    ws.on('close', (code, reason) => {
      w.closed = { code, reason: reason.toString(), at: Date.now() };
      reject(Object.assign(new Error(`closed ${code} ${reason}`), { code }));
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body: JSON.parse(body || '{}') })));
    });
    ws.on('error', () => {});
  });
}

const events = (w: Watch) => w.messages.filter((m) => m.type !== 'READY');

// A watch lives only as long as the credential it was opened with.
describe.each(DIALECTS)('watch credentials on %s', (dialect) => {
  let t: TestServer;
  let n = 0;
  beforeAll(async () => {
    t = await testServer(dialect);
  });
  afterAll(() => t?.close());

  /** A fresh user with one token; returns the token. */
  const userWithToken = async (role: string): Promise<{ user: string; token: string }> => {
    const user = `u${++n}`;
    expect((await t.api('POST', '/api/v1/users', { metadata: { name: user }, spec: { role } })).status).toBe(201);
    const tok = await t.api('POST', '/api/v1/apitokens', { metadata: { name: `${user}-tok` }, spec: { user } });
    return { user, token: tok.body.status.token };
  };
  const project = (name: string) => t.api('POST', '/api/v1/projects', { metadata: { name }, spec: {} });

  /** Revokes, then checks the watch closed with 4401 quickly and got nothing after the revocation. */
  async function expectRevoked(w: Watch, revoke: () => Promise<{ status: number }>, reason: RegExp) {
    await project(`before-${n}`);
    await waitFor(() => events(w).length === 1);
    const t0 = Date.now();
    expect((await revoke()).status).toBe(200);
    await waitFor(() => w.closed, 2000);
    expect(w.closed!.code).toBe(4401);
    expect(w.closed!.reason).toMatch(reason);
    expect(w.closed!.at - t0).toBeLessThan(2000);
    await project(`after-${n}`);
    await new Promise((r) => setTimeout(r, 200));
    expect(events(w).map((m) => m.object.metadata.name)).toEqual([`before-${n}`]);
  }

  it('closes when its API token is deleted', async () => {
    const { user, token } = await userWithToken('viewer');
    const w = await openWatch(t, token);
    await expectRevoked(w, () => t.api('DELETE', `/api/v1/apitokens/${user}-tok`), /API token .* deleted/);
  });

  it('closes when its user is deleted (and the token stays dead when the name comes back)', async () => {
    const { user, token } = await userWithToken('operator');
    const w = await openWatch(t, token);
    await expectRevoked(w, () => t.api('DELETE', `/api/v1/users/${user}`), /deleted/);
    await t.api('POST', '/api/v1/users', { metadata: { name: user }, spec: { role: 'admin' } });
    await expect(openWatch(t, token)).rejects.toMatchObject({ status: 401 });
  });

  it('closes when its user is disabled', async () => {
    const { user, token } = await userWithToken('viewer');
    const w = await openWatch(t, token);
    await expectRevoked(w, () => t.api('PATCH', `/api/v1/users/${user}`, { spec: { disabled: true } }), /disabled/);
  });

  it('closes when the role is lowered, not when it is raised or another user changes', async () => {
    const { user, token } = await userWithToken('operator');
    const other = await userWithToken('operator');
    const w = await openWatch(t, token);
    expect((await t.api('PATCH', `/api/v1/users/${user}`, { spec: { role: 'admin' } })).status).toBe(200);
    expect((await t.api('PATCH', `/api/v1/users/${other.user}`, { spec: { role: 'viewer', disabled: true } })).status).toBe(200);
    expect((await t.api('DELETE', `/api/v1/apitokens/${other.user}-tok`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(w.closed).toBeUndefined();
    await expectRevoked(w, () => t.api('PATCH', `/api/v1/users/${user}`, { spec: { role: 'viewer' } }), /lowered to viewer/);
  });

  it('closes when its token is made to expire', async () => {
    const { user, token } = await userWithToken('viewer');
    const w = await openWatch(t, token);
    await expectRevoked(
      w,
      () => t.api('PATCH', `/api/v1/apitokens/${user}-tok`, { spec: { expiresAt: new Date(Date.now() - 1000).toISOString() } }),
      /expired/,
    );
  });

  it('caps the watches of one token (429, also for a burst) and frees a slot when one closes', async () => {
    const { token } = await userWithToken('viewer');
    const other = await userWithToken('viewer');
    // A burst of 30 upgrades at once: at most 20 stay open.
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => openWatch(t, token)));
    const open = results.filter((r): r is PromiseFulfilledResult<Watch> => r.status === 'fulfilled').map((r) => r.value);
    await new Promise((r) => setTimeout(r, 200));
    const alive = open.filter((w) => !w.closed);
    expect(alive).toHaveLength(20);
    for (const r of results.filter((r) => r.status === 'rejected'))
      expect((r as PromiseRejectedResult).reason).toSatisfy((e: { status?: number; code?: number }) => e.status === 429 || e.code === 4429);
    const again = await openWatch(t, token).catch((e) => e);
    expect(again).toMatchObject({ status: 429, body: { error: { code: 'RateLimited' } } });
    // Another token of another user is not affected.
    (await openWatch(t, other.token)).ws.close();
    alive[0].ws.close();
    await waitFor(async () => {
      const w = await openWatch(t, token).catch(() => undefined);
      w?.ws.close();
      return w;
    }, 2000);
    for (const w of alive) w.ws.close();
  });

  it('takes the per-token cap from the server option', async () => {
    const small = await testServer(dialect, { maxWatchesPerToken: 2 });
    try {
      const a = await openWatch(small, small.admin);
      const b = await openWatch(small, small.admin);
      expect(await openWatch(small, small.admin).catch((e) => e)).toMatchObject({ status: 429, body: { error: { code: 'RateLimited' } } });
      a.ws.close();
      b.ws.close();
    } finally {
      await small.close();
    }
  });
});
