import { randomUUID } from 'node:crypto';
import { openStore } from '@edgeplane/server';
import type { TestStore } from './db.js';

/** Host names in name order: edge-00000, edge-00001, ... */
export const seededName = (i: number) => `edge-${String(i).padStart(5, '0')}`;

/**
 * Writes `count` hosts straight into the store (through a second connection), far faster than
 * registering devices: for UI and paging tests at fleet scale. Every 100th host gets rack=r7.
 */
export async function seedHosts(store: TestStore, count: number): Promise<void> {
  const s = openStore({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
  try {
    const now = new Date().toISOString();
    for (let from = 0; from < count; from += 500) {
      const rows = [];
      for (let i = from; i < Math.min(count, from + 500); i++) {
        const uid = randomUUID();
        const state = i % 10 === 0 ? 'pending-approval' : 'ready';
        rows.push({
          name: seededName(i),
          uid: randomUUID(),
          project: 'default',
          labels: JSON.stringify({ site: `site-${i % 50}`, ...(i % 100 === 0 ? { rack: 'r7' } : {}) }),
          annotations: '{}',
          generation: 1,
          resource_version: 1,
          created_at: now,
          updated_at: now,
          spec: JSON.stringify({ site: `site-${i % 50}` }),
          status: JSON.stringify({ deviceUid: uid, registeredAt: now, registeredVia: 'token', agentVersion: 'seed', conditions: [] }),
          device_uid: uid,
          public_key: JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: `seed${i}` }),
          pending_public_key: null,
          state,
          connectivity: 'offline',
          last_seen: null,
          pairing_key_hash: null,
        });
      }
      await s.db.insertInto('edge_hosts').values(rows).execute();
    }
  } finally {
    await s.close();
  }
}

export interface SeedHost {
  name: string;
  state?: 'pending-approval' | 'ready' | 'in-use' | 'rejected' | 'pre-registered';
  site?: string;
  /** Reported as status.inventory.hostname. */
  hostname?: string;
  /** A device key change waiting for approval. */
  pendingKey?: boolean;
  /** Stored as is: no agent is connected, but the server keeps what the row says until a restart. */
  connectivity?: 'online' | 'offline';
}

/** Writes the given hosts straight into the store (offline unless said otherwise), each as described. */
export async function insertHosts(store: TestStore, hosts: SeedHost[]): Promise<void> {
  const s = openStore({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
  try {
    const now = new Date().toISOString();
    for (let from = 0; from < hosts.length; from += 500) {
      const rows = hosts.slice(from, from + 500).map((h) => {
        const uid = randomUUID();
        return {
          name: h.name,
          uid: randomUUID(),
          project: 'default',
          labels: '{}',
          annotations: '{}',
          generation: 1,
          resource_version: 1,
          created_at: now,
          updated_at: now,
          spec: JSON.stringify(h.site ? { site: h.site } : {}),
          status: JSON.stringify({
            deviceUid: uid,
            registeredAt: now,
            registeredVia: 'token',
            agentVersion: 'seed',
            conditions: [],
            ...(h.hostname ? { inventory: { hostname: h.hostname } } : {}),
          }),
          device_uid: uid,
          public_key: JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: `seed-${h.name}` }),
          pending_public_key: h.pendingKey ? JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: `new-${h.name}` }) : null,
          state: h.state ?? 'ready',
          connectivity: h.connectivity ?? 'offline',
          last_seen: null,
          pairing_key_hash: null,
        };
      });
      await s.db.insertInto('edge_hosts').values(rows).execute();
    }
  } finally {
    await s.close();
  }
}
