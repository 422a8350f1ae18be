import type { Executor } from '../store/db.js';
import { jsonText } from '../store/json-field.js';

/** Hosts counted by site (spec.site, null for none), state and connectivity, with the latest change of each group. */
export async function hostGroups(db: Executor) {
  const site = jsonText(db, 'spec', ['site']);
  const rows = await db
    .selectFrom('edge_hosts')
    .select([site.as('site'), 'state', 'connectivity', (eb) => eb.fn.countAll<number | string>().as('n'), (eb) => eb.fn.max('updated_at').as('changed')])
    .groupBy([site, 'state', 'connectivity'])
    .execute();
  return rows.map((r) => ({ site: r.site ?? undefined, state: r.state, connectivity: r.connectivity, n: Number(r.n), changed: r.changed as string }));
}

/** What the summary shows of each Site, read out of its JSON in SQL (10,000 JSON.parse calls cost more than the query). */
export async function siteRows(db: Executor) {
  const rows = await db
    .selectFrom('sites')
    .select([
      'name',
      jsonText(db, 'spec', ['displayName']).as('displayName'),
      jsonText(db, 'spec', ['coordinates', 'latitude']).as('latitude'),
      jsonText(db, 'spec', ['coordinates', 'longitude']).as('longitude'),
      jsonText(db, 'labels', ['region']).as('region'),
    ])
    .execute();
  // JSON numbers come back as numbers (SQLite) or text (PostgreSQL's #>>).
  const num = (v: unknown) => (v === null || v === undefined ? undefined : Number(v));
  return rows.map((r) => ({
    name: r.name,
    displayName: r.displayName ?? undefined,
    region: r.region ?? undefined,
    latitude: num(r.latitude),
    longitude: num(r.longitude),
  }));
}

export async function clusterRows(db: Executor) {
  return db.selectFrom('clusters').select(['name', 'spec', 'status', 'updated_at']).orderBy('name').execute();
}

/** `spec.site` of the named hosts (a cluster without its own site is at its first node's). */
export async function siteOfHosts(db: Executor, names: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const site = jsonText(db, 'spec', ['site']);
  for (let i = 0; i < names.length; i += 500) {
    const rows = await db
      .selectFrom('edge_hosts')
      .select(['name', site.as('site')])
      .where('name', 'in', names.slice(i, i + 500))
      .execute();
    for (const r of rows) if (r.site) out.set(r.name, r.site);
  }
  return out;
}

/** The OS image each pinned digest came from, as profile revisions record it (few rows: one per revision). */
export async function imagesByDigest(db: Executor): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const r of await db.selectFrom('cluster_profile_revisions').select('spec').execute()) {
    const os = (JSON.parse(r.spec) as { layers?: { os?: { image?: string; digest?: string } } }).layers?.os;
    if (os?.digest && os.image) out.set(os.digest, os.image);
  }
  return out;
}
