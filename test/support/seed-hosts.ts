import { randomUUID } from 'node:crypto';
import { canonicalDeviceKey, DEFAULT_PROJECT } from '@edgeplane/protocol';
import { openStore } from '@edgeplane/server';
import type { TestStore } from './db.js';

/** Host names in name order: edge-00000, edge-00001, ... */
export const seededName = (i: number) => `edge-${String(i).padStart(5, '0')}`;

/**
 * Writes `count` hosts straight into the store (through a second connection), far faster than
 * registering devices: for UI and paging tests at fleet scale. Every 10th host is pending approval,
 * every 100th gets rack=r7.
 */
export async function seedHosts(store: TestStore, count: number): Promise<void> {
  await insertHosts(
    store,
    Array.from({ length: count }, (_, i) => ({
      name: seededName(i),
      state: i % 10 === 0 ? 'pending-approval' : 'ready',
      site: `site-${i % 50}`,
      labels: { site: `site-${i % 50}`, ...(i % 100 === 0 ? { rack: 'r7' } : {}) },
    })),
  );
}

export interface SeedHost {
  name: string;
  state?: 'pending-approval' | 'ready' | 'in-use' | 'rejected' | 'pre-registered';
  site?: string;
  labels?: Record<string, string>;
  /** Reported as status.inventory.hostname. */
  hostname?: string;
  /** A device key change waiting for approval. */
  pendingKey?: boolean;
  /** Stored as is: no agent is connected, but the server keeps what the row says until a restart. */
  connectivity?: 'online' | 'offline';
  /** The device's UID and Ed25519 public key (JWK x), for hosts a real agent connects as; default a random UID and a key no device holds. */
  device?: { uid: string; x: string };
  /** status.agentVersion; default "seed". */
  agentVersion?: string;
}

/**
 * The edge_hosts row registration writes for a device registered with a token (server
 * agent/register.service.ts insertHost), as `h` describes it; offline unless said otherwise.
 */
export function hostRow(h: SeedHost, now: string) {
  return {
    name: h.name,
    uid: randomUUID(),
    project: DEFAULT_PROJECT,
    labels: JSON.stringify(h.labels ?? {}),
    annotations: '{}',
    generation: 1,
    resource_version: 1,
    created_at: now,
    updated_at: now,
    spec: JSON.stringify(h.site ? { site: h.site } : {}),
    status: JSON.stringify({
      registeredAt: now,
      registeredVia: 'token',
      identity: { kind: 'file' },
      agentVersion: h.agentVersion ?? 'seed',
      conditions: [],
      ...(h.hostname ? { inventory: { hostname: h.hostname } } : {}),
    }),
    device_uid: h.device?.uid ?? randomUUID(),
    public_key: canonicalDeviceKey({ kty: 'OKP', crv: 'Ed25519', x: h.device?.x ?? `seed-${h.name}` }),
    pending_public_key: h.pendingKey ? canonicalDeviceKey({ kty: 'OKP', crv: 'Ed25519', x: `new-${h.name}` }) : null,
    state: h.state ?? 'ready',
    connectivity: h.connectivity ?? 'offline',
    last_seen: null,
    pairing_key_hash: null,
  };
}

/** Writes the given hosts straight into the store (through a second connection), in batches. */
export async function insertHosts(store: Pick<TestStore, 'dataDir' | 'databaseUrl'>, hosts: SeedHost[]): Promise<void> {
  const s = openStore({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
  try {
    const now = new Date().toISOString();
    for (let from = 0; from < hosts.length; from += 500) {
      await s.db
        .insertInto('edge_hosts')
        .values(hosts.slice(from, from + 500).map((h) => hostRow(h, now)))
        .execute();
    }
  } finally {
    await s.close();
  }
}
