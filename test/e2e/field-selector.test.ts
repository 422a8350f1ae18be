import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '@edgeplane/server';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { seededName, seedHosts } from '../support/seed-hosts.js';
import { type TestServer, testServer } from '../support/server.js';

const HOSTS = 10_000;
type Page = { items: { metadata: { name: string }; spec: { site?: string }; status: { state: string } }[]; metadata: { continue?: string } };

/**
 * Field selectors on list calls, on 10,000 hosts (seeded: spec.site site-<i%50>, every 10th
 * pending-approval, every 100th labelled rack=r7): the same answers on both dialects, through every
 * page, combined with label selectors, and through `edgeplane get --field-selector`.
 */
describe.each(DIALECTS)('field selectors on %s', (dialect) => {
  let t: TestServer;
  let dir: string;
  const env = () => ({ EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') });
  /** Every page of a list, `limit` at a time; the names in order. */
  const all = async (plural: string, query: string, limit = 500) => {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const r = await t.api('GET', `/api/v1/${plural}?${query}&limit=${limit}${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      const page = r.body as Page;
      names.push(...page.items.map((h) => h.metadata.name));
      token = page.metadata.continue;
    } while (token);
    return names;
  };
  const expected = (pred: (i: number) => boolean) =>
    Array.from({ length: HOSTS }, (_, i) => i)
      .filter(pred)
      .map(seededName);
  const q = (s: string) => `fieldSelector=${encodeURIComponent(s)}`;

  beforeAll(async () => {
    t = await testServer(dialect);
    dir = mkdtempSync(join(tmpdir(), 'ep-field-selector-'));
    await seedHosts(t.store, HOSTS);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('filters hosts by site, state, connectivity and name, in SQL, across pages', async () => {
    expect(await all('edgehosts', q('spec.site=site-7'), 37)).toEqual(expected((i) => i % 50 === 7));
    expect(await all('edgehosts', q('spec.site==site-7,status.state=ready'))).toEqual(expected((i) => i % 50 === 7));
    expect(await all('edgehosts', q('spec.site=site-10,status.state!=ready'), 64)).toEqual(expected((i) => i % 50 === 10));
    expect(await all('edgehosts', q('spec.site=site-10,status.state=ready'))).toEqual([]);
    expect(await all('edgehosts', q('status.state=pending-approval,status.connectivity=offline'), 1000)).toEqual(expected((i) => i % 10 === 0));
    expect(await all('edgehosts', q('status.connectivity=online'))).toEqual([]);
    expect(await all('edgehosts', q('metadata.name=edge-00042'))).toEqual(['edge-00042']);
    expect((await all('edgehosts', q('spec.site!=site-7'), 1000)).length).toBe(HOSTS - HOSTS / 50);
    // `field=` matches hosts without the field: none of the seeded hosts.
    expect(await all('edgehosts', q('spec.site='))).toEqual([]);
    // With a label selector: site-0 hosts in rack r7 (every 100th), paged 3 at a time.
    expect(await all('edgehosts', `${q('spec.site=site-0')}&labelSelector=rack%3Dr7`, 3)).toEqual(expected((i) => i % 100 === 0));
  });

  it('uses the indexes for host site and state', async () => {
    const s = openStore({ dataDir: t.store.dataDir, databaseUrl: t.store.databaseUrl });
    try {
      const plan = async (where: string) => {
        const text =
          dialect === 'postgres'
            ? // Small tables would always be scanned; ask the planner what it does when it can use an index.
              (
                await s.db.transaction().execute(async (trx) => {
                  await sql`set local enable_seqscan = off`.execute(trx);
                  // No ORDER BY name/LIMIT here: with them the primary key's name order competes on cost,
                  // and which index wins then depends on the table's statistics of the moment.
                  return (await sql.raw<{ 'QUERY PLAN': string }>(`explain select * from edge_hosts where ${where}`).execute(trx)).rows;
                })
              ).map((r) => r['QUERY PLAN'])
            : (await sql.raw<{ detail: string }>(`explain query plan select * from edge_hosts where ${where} order by name limit 50`).execute(s.db)).rows.map(
                (r) => r.detail,
              );
        return text.join('\n');
      };
      const site = dialect === 'postgres' ? "(spec::jsonb #>> '{site}') = 'site-7'" : "json_extract(spec, '$.site') = 'site-7'";
      expect(await plan(site)).toMatch(/edge_hosts_site/);
      expect(await plan("state = 'ready'")).toMatch(/edge_hosts_state/);
    } finally {
      await s.close();
    }
  });

  it('refuses an unknown field, a malformed requirement or a control character with InvalidFieldSelector', async () => {
    for (const bad of ['spec.hostname=x', 'spec.site', 'spec.site>x', 'status.state=a=b', 'constructor=x', '__proto__=x']) {
      const r = await t.api('GET', `/api/v1/edgehosts?${q(bad)}`);
      expect(r.status, bad).toBe(400);
      expect(r.body.error.code, bad).toBe('InvalidFieldSelector');
      expect(r.body.error.details.supported).toEqual(expect.arrayContaining(['metadata.name', 'spec.site', 'status.state', 'status.connectivity']));
    }
    // A control character never reaches the store (the API's input guard refuses it first).
    expect((await t.api('GET', `/api/v1/edgehosts?${q('status.state=a\u0000b')}`)).status).toBe(400);
    // Other kinds: their own fields, the same code for an unknown one.
    expect((await t.api('GET', `/api/v1/clusters?${q('status.phase=Running,spec.site=site-7')}`)).body.items).toEqual([]);
    expect((await t.api('GET', `/api/v1/sites?${q('metadata.name=nowhere')}`)).body.items).toEqual([]);
    expect((await t.api('GET', `/api/v1/sites?${q('spec.site=x')}`)).body.error.code).toBe('InvalidFieldSelector');
    // The OpenAPI document names the parameter and each kind's fields.
    const doc = (await t.api('GET', '/api/v1/openapi.json')).body;
    const param = doc.paths['/api/v1/edgehosts'].get.parameters.find((p: { name: string }) => p.name === 'fieldSelector');
    expect(param.description).toContain('spec.site, status.state, status.connectivity');
  });

  it('edgeplane get --field-selector', async () => {
    const r = await cli(['get', 'hosts', '--field-selector', 'spec.site=site-7,status.state=ready', '-o', 'name'], env());
    expect(r.code, r.out).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(expected((i) => i % 50 === 7).map((n) => `edgehosts/${n}`));
    const combined = await cli(['get', 'hosts', '--field-selector', 'spec.site=site-0', '-l', 'rack=r7', '-o', 'name'], env());
    expect(combined.stdout.trim().split('\n')).toHaveLength(HOSTS / 100);
    const bad = await cli(['get', 'hosts', '--field-selector', 'spec.color=red'], env());
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain('InvalidFieldSelector');
    expect(bad.out).toContain('spec.site');
  });
});
