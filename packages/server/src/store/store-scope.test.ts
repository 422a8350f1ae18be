import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, type TestStore, testStore } from '../../../../test/support/db.js';
import { openStore, type Store } from './db.js';
import { type StoreNotice, storeScope } from './store-scope.js';

/** Announced writes reach only the store they were written to, also from inside its transactions. */
describe.each(DIALECTS)('store scope on %s', (dialect) => {
  const places: TestStore[] = [];
  const stores: Store[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const place = await testStore(dialect);
      places.push(place);
      stores.push(openStore({ dataDir: place.dataDir, databaseUrl: place.databaseUrl }));
    }
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    for (const p of places) await p.cleanup();
  });

  it('travels with transactions and is not shared between stores', async () => {
    const [one, two] = stores;
    const heard: [string, StoreNotice][] = [];
    const off = [one.scope.onAnnounce((n) => heard.push(['one', n])), two.scope.onAnnounce((n) => heard.push(['two', n]))];
    expect(storeScope(one.db)).toBe(one.scope);
    expect(one.scope).not.toBe(two.scope);
    await one.db.transaction().execute(async (trx) => {
      expect(storeScope(trx)).toBe(one.scope);
      storeScope(trx)?.announce({ kind: 'Site', name: 's', type: 'ADDED' });
    });
    await two.db.transaction().execute(async (trx) => storeScope(trx)?.announce({ kind: 'Site', name: 't', type: 'MODIFIED' }));
    expect(heard).toEqual([
      ['one', { kind: 'Site', name: 's', type: 'ADDED' }],
      ['two', { kind: 'Site', name: 't', type: 'MODIFIED' }],
    ]);
    for (const f of off) f();
  });
});
