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
