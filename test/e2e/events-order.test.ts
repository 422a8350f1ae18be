import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

type Ev = {
  metadata: { name: string };
  spec: { reason: string; involvedObject: { kind: string; name: string; uid?: string } };
  status: { lastTimestamp: string };
};

/**
 * Events list in time order (oldest first, newest last) through the API, its pages and the CLI, and
 * belong to one incarnation of their object: a host deleted and pre-registered again under the same
 * name does not show the old host's events in `describe`.
 */
describe.each(DIALECTS)('events in time order on %s', (dialect) => {
  let t: TestServer;
  let dir: string;
  const env = () => ({ EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') });
  const list = async (query: string) => {
    const r = await t.api('GET', `/api/v1/events?${query}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as { items: Ev[]; metadata: { continue?: string } };
  };
  /** Pre-registers `name` for a new device, registers and connects it; returns the device's socket and the host's uid. */
  const bringUp = async (name: string) => {
    const dev = await TestDevice.create();
    const pre = await t.api('POST', '/api/v1/edgehosts', { metadata: { name }, spec: { deviceUid: dev.uid } });
    expect(pre.status, JSON.stringify(pre.body)).toBe(201);
    const reg = await register(t.url, await dev.registerBody('', { token: undefined, pairingKey: pre.body.status.pairingKey }));
    expect(reg.body.hostName).toBe(name);
    const c = await connect(t.url, await dev.connectToken(name));
    c.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    await waitFor(() => c.messages.some((m) => m.type === 'welcome'));
    return { ws: c.ws, uid: pre.body.metadata.uid as string };
  };
  const agentEvent = (id: string, reason: string, timestamp: string) =>
    JSON.stringify({ type: 'event', id, eventType: 'Normal', reason, message: `${reason} happened`, timestamp });

  beforeAll(async () => {
    t = await testServer(dialect);
    dir = mkdtempSync(join(tmpdir(), 'ep-events-order-'));
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists by event time, pages keep that order, and the CLI prints it oldest first', async () => {
    const first = await bringUp('nuc-01');
    const now = Date.now();
    const at = (s: number) => new Date(now + s * 1000).toISOString();
    // Sent out of order, as a reconnecting agent flushes its queue; one from a clock far in the future.
    first.ws.send(agentEvent('a3', 'ThirdThing', at(-10)));
    first.ws.send(agentEvent('a1', 'FirstThing', at(-30)));
    first.ws.send(agentEvent('f1', 'FutureClock', at(3600)));
    first.ws.send(agentEvent('a2', 'SecondThing', at(-20)));
    const mine = ['FirstThing', 'SecondThing', 'ThirdThing', 'FutureClock'];
    await waitFor(async () => (await list('fieldSelector=involvedObject.name=nuc-01')).items.filter((e) => mine.includes(e.spec.reason)).length === 4);
    // A few more events of other objects, recorded now, interleave by time.
    await bringUp('nuc-02');
    // Until the events about nuc-02 coming online are in (the connectivity flush writes them shortly after).
    let seen = -1;
    await waitFor(
      async () => {
        const n = (await list('limit=1000')).items.length;
        const settled = n === seen;
        seen = n;
        return settled;
      },
      10_000,
      700,
    );

    const all = (await list('limit=1000')).items;
    const reasons = all.map((e) => e.spec.reason).filter((r: string) => mine.includes(r));
    // The future-dated event counts as recorded now: after the past ones, never pinned to the end forever.
    expect(reasons).toEqual(mine);
    const times = all.map((e) => Date.parse(e.status.lastTimestamp));
    const clamped = times.map((x, i) => (all[i].spec.reason === 'FutureClock' ? Number.NaN : x)).filter((x) => !Number.isNaN(x));
    expect(clamped).toEqual([...clamped].sort((a, b) => a - b));

    // Pages of 2 walk the same order, with no event twice or missed.
    const paged: string[] = [];
    let token: string | undefined;
    do {
      const page = await list(`limit=2${token ? `&continue=${token}` : ''}`);
      paged.push(...page.items.map((e) => e.metadata.name));
      token = page.metadata.continue;
    } while (token);
    expect(paged).toEqual(all.map((e) => e.metadata.name));
    // Also with a field selector.
    const byHost = (await list('fieldSelector=involvedObject.name=nuc-01')).items.map((e) => e.metadata.name);
    const byHostPaged: string[] = [];
    token = undefined;
    do {
      const page = await list(`fieldSelector=involvedObject.name=nuc-01&limit=1${token ? `&continue=${token}` : ''}`);
      byHostPaged.push(...page.items.map((e) => e.metadata.name));
      token = page.metadata.continue;
    } while (token);
    expect(byHostPaged).toEqual(byHost);
    // A tampered token is refused, not a 500.
    expect((await t.api('GET', '/api/v1/events?continue=eyJhZnRlciI6Im51Yy0wMSJ9')).body.error.code).toBe('InvalidContinueToken');

    // The console's "Recent events" are the latest, newest first, by the same time.
    const recent = (await t.api('GET', '/api/v1/summary')).body.recentEvents as Ev[];
    expect(recent.map((e) => e.metadata.name)).toEqual(
      all
        .slice(-recent.length)
        .reverse()
        .map((e) => e.metadata.name),
    );

    const r = await cli(['get', 'events'], env());
    expect(r.code, r.out).toBe(0);
    const positions = mine.map((reason) => r.stdout.indexOf(reason));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    first.ws.close();
  });

  it("shows a re-created host's own events only, matched by uid", async () => {
    const before = (await list('fieldSelector=involvedObject.name=nuc-01')).items;
    expect(before.some((e) => e.spec.reason === 'FirstThing')).toBe(true);
    expect((await t.api('DELETE', '/api/v1/edgehosts/nuc-01')).status).toBe(200);

    const second = await bringUp('nuc-01');
    second.ws.send(agentEvent('b1', 'SecondLife', new Date().toISOString()));
    const own = async () => (await list(`fieldSelector=involvedObject.uid=${second.uid}`)).items;
    await waitFor(async () => (await own()).some((e) => e.spec.reason === 'SecondLife'));
    const reasons = (await own()).map((e) => e.spec.reason);
    expect(reasons).not.toContain('FirstThing');
    expect((await own()).every((e) => e.spec.involvedObject.uid === second.uid)).toBe(true);
    // By name, the history of both hosts stays visible (as `get events` shows it).
    expect((await list('fieldSelector=involvedObject.name=nuc-01')).items.map((e) => e.spec.reason)).toEqual(
      expect.arrayContaining(['FirstThing', 'SecondLife']),
    );

    const d = await cli(['describe', 'host', 'nuc-01'], env());
    expect(d.code, d.out).toBe(0);
    expect(d.stdout).toContain('SecondLife');
    expect(d.stdout).not.toContain('FirstThing');
    second.ws.close();
  });
});
