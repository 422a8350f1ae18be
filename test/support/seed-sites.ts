import { randomUUID } from 'node:crypto';
import { openStore } from '@edgeplane/server';
import type { TestStore } from './db.js';

export interface SeedSite {
  name: string;
  latitude?: number;
  longitude?: number;
  region?: string;
  displayName?: string;
}

const resourceColumns = (name: string, labels: Record<string, string>, spec: unknown, status: unknown, now: string) => ({
  name,
  uid: randomUUID(),
  project: 'default',
  labels: JSON.stringify(labels),
  annotations: '{}',
  generation: 1,
  resource_version: 1,
  created_at: now,
  updated_at: now,
  spec: JSON.stringify(spec),
  status: JSON.stringify(status),
});

/** Writes Site objects straight into the store in batches (10,000 in a second or two, where the API takes minutes). */
export async function insertSites(store: TestStore, sites: SeedSite[]): Promise<void> {
  const s = openStore({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
  try {
    const now = new Date().toISOString();
    for (let from = 0; from < sites.length; from += 500) {
      const rows = sites.slice(from, from + 500).map((x) =>
        resourceColumns(
          x.name,
          x.region ? { region: x.region } : {},
          {
            timezone: 'UTC',
            maintenanceWindows: [],
            ...(x.displayName ? { displayName: x.displayName } : {}),
            ...(x.latitude !== undefined && x.longitude !== undefined ? { coordinates: { latitude: x.latitude, longitude: x.longitude } } : {}),
          },
          {},
          now,
        ),
      );
      await s.db.insertInto('sites').values(rows).execute();
    }
  } finally {
    await s.close();
  }
}

export interface SeedCluster {
  name: string;
  site?: string;
  /** Hosts of spec.nodes (the first one's site counts when `site` is not set). */
  nodes?: string[];
  phase?: string;
  upgradeState?: string;
  /** What each node reports (status.nodes). */
  nodeVersions?: { host: string; osImageDigest?: string; kubernetesVersion?: string }[];
}

/**
 * Writes clusters with the given status straight into the store: a status no controller wrote (the
 * cluster controller rewrites it once it looks at the cluster), for read-only views such as the fleet
 * summary. Their profile is `seeded` revision 1, which need not exist.
 */
export async function insertClusters(store: TestStore, clusters: SeedCluster[]): Promise<void> {
  const s = openStore({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
  try {
    const now = new Date().toISOString();
    const rows = clusters.map((c) =>
      resourceColumns(
        c.name,
        {},
        {
          type: 'native',
          profile: { name: 'seeded', revision: 1 },
          ...(c.site ? { site: c.site } : {}),
          nodes: (c.nodes ?? []).map((host, i) => ({ host, role: i === 0 ? 'control-plane' : 'worker' })),
        },
        {
          ...(c.phase ? { phase: c.phase } : {}),
          ...(c.upgradeState ? { upgrade: { state: c.upgradeState } } : {}),
          conditions: [],
          nodes: (c.nodeVersions ?? []).map((n) => ({ ...n, role: 'worker', phase: 'Ready', ready: true })),
        },
        now,
      ),
    );
    if (rows.length) await s.db.insertInto('clusters').values(rows).execute();
  } finally {
    await s.close();
  }
}

/** Records that profile revision `<profile>/<revision>` pins OS image `image` at `digest`. */
export async function insertProfileRevision(store: TestStore, profile: string, revision: number, image: string, digest: string): Promise<void> {
  const s = openStore({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
  try {
    await s.db
      .insertInto('cluster_profile_revisions')
      .values({ profile, revision, spec: JSON.stringify({ layers: { os: { image, digest } } }), created_at: new Date().toISOString() })
      .execute();
  } finally {
    await s.close();
  }
}

/** Cities the seeded sites gather around (latitude, longitude, region), so a seeded map looks like a retail fleet. */
const CITIES: [number, number, string][] = [
  [52.52, 13.4, 'eu'],
  [48.86, 2.35, 'eu'],
  [51.51, -0.13, 'eu'],
  [40.42, -3.7, 'eu'],
  [41.9, 12.5, 'eu'],
  [59.33, 18.07, 'eu'],
  [50.45, 30.52, 'eu'],
  [40.71, -74.0, 'us'],
  [41.88, -87.63, 'us'],
  [34.05, -118.24, 'us'],
  [29.76, -95.37, 'us'],
  [33.75, -84.39, 'us'],
  [47.61, -122.33, 'us'],
  [43.65, -79.38, 'us'],
  [19.43, -99.13, 'latam'],
  [-23.55, -46.63, 'latam'],
  [-34.6, -58.38, 'latam'],
  [4.71, -74.07, 'latam'],
  [35.68, 139.69, 'ap'],
  [37.57, 126.98, 'ap'],
  [31.23, 121.47, 'ap'],
  [1.35, 103.82, 'ap'],
  [19.08, 72.88, 'ap'],
  [28.61, 77.21, 'ap'],
  [-33.87, 151.21, 'ap'],
  [-37.81, 144.96, 'ap'],
  [30.04, 31.24, 'mea'],
  [25.2, 55.27, 'mea'],
  [-26.2, 28.05, 'mea'],
  [6.52, 3.38, 'mea'],
];

/** Site names of seeded fleets: shop-00000, shop-00001, ... */
export const seededSiteName = (i: number) => `shop-${String(i).padStart(5, '0')}`;

/**
 * `count` sites spread around the cities above (a deterministic spiral out to about 3 degrees from
 * each), labelled with the city's region.
 */
export function spreadSites(count: number): SeedSite[] {
  const out: SeedSite[] = [];
  for (let i = 0; i < count; i++) {
    const [lat, lon, region] = CITIES[i % CITIES.length];
    const k = Math.floor(i / CITIES.length);
    const r = 3 * Math.sqrt(k / Math.max(1, count / CITIES.length));
    const a = k * 2.39996; // golden angle: even cover without a grid pattern
    // Five decimals (about a metre), as a real site's coordinates would be written.
    const round = (x: number) => Math.round(x * 1e5) / 1e5;
    out.push({ name: seededSiteName(i), latitude: round(lat + r * Math.sin(a)), longitude: round(lon + r * Math.cos(a) * 1.4), region });
  }
  return out;
}
