import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestStore, testStore } from '../../../../test/support/db.js';
import { openStore, type Store } from '../store/db.js';
import { migrateToLatest } from '../store/migrations.js';
import { acquireLease } from './controller-lease.repository.js';
import { LeaseLostError, openFencedDb } from './fenced-db.js';

const site = (name: string) => ({
  name,
  uid: name,
  project: 'default',
  labels: '{}',
  annotations: '{}',
  generation: 1,
  resource_version: 1,
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: '2026-01-01T00:00:00.000Z',
  spec: '{}',
  status: '{}',
});

/** Controller transactions on PostgreSQL write only while their replica holds the lease at its epoch. */
describe('lease-fenced controller writes on postgres', () => {
  let place: TestStore;
  let store: Store;
  beforeAll(async () => {
    place = await testStore('postgres');
    store = openStore({ dataDir: place.dataDir, databaseUrl: place.databaseUrl });
    await migrateToLatest(store.db);
  });
  afterAll(async () => {
    await store?.close();
    await place?.cleanup();
  });

  it('commits while the lease is held, refuses after it was taken, and makes a takeover wait for an open step', async () => {
    const far = () => new Date(Date.now() + 60_000).toISOString();
    // A short lease: it runs out while the second step below is still open.
    let epoch = await acquireLease(store.db, 'controllers', 'r1', new Date().toISOString(), new Date(Date.now() + 2000).toISOString());
    expect(epoch).toBe(1);
    const fenced = openFencedDb(place.databaseUrl!, store.scope, { name: 'controllers', holder: 'r1', epoch: () => epoch });
    try {
      await fenced.transaction().execute((trx) => trx.insertInto('sites').values(site('held')).execute());

      // A step in progress holds the lease row: a takeover after the lease ran out waits for it.
      let taken: number | undefined;
      await fenced.transaction().execute(async (trx) => {
        await trx.insertInto('sites').values(site('in-step')).execute();
        await new Promise((r) => setTimeout(r, 2100));
        void acquireLease(store.db, 'controllers', 'r2', new Date().toISOString(), far()).then((e) => (taken = e));
        await new Promise((r) => setTimeout(r, 300));
        expect(taken).toBeUndefined();
      });
      await expect.poll(() => taken).toBe(2);

      // r1 still believes it holds epoch 1: its next step is refused and rolled back; so is one without a lease.
      await expect(fenced.transaction().execute((trx) => trx.insertInto('sites').values(site('late')).execute())).rejects.toBeInstanceOf(LeaseLostError);
      epoch = undefined;
      await expect(fenced.transaction().execute((trx) => trx.insertInto('sites').values(site('none')).execute())).rejects.toBeInstanceOf(LeaseLostError);
      const names = (await store.db.selectFrom('sites').select('name').orderBy('name').execute()).map((r) => r.name);
      expect(names).toEqual(['held', 'in-step']);
    } finally {
      await fenced.destroy();
    }
  });
});
