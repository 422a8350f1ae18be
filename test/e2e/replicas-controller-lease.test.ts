import { join } from 'node:path';
import { type RunningServer, startServer } from '@edgeplane/server';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli } from '../support/cli-process.js';
import { type TestStore, testStore } from '../support/db.js';
import { waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';

const TTL = 3;

/**
 * Three replicas on one PostgreSQL database (A a real process, B and C in this process): the
 * controllers run on one of them, the lease holder. Live replicas do not take a running lease; when
 * the holder is killed with SIGKILL exactly one other replica takes it (the epoch goes up by one)
 * within the TTL and a third.
 */
describe('controller lease across replicas on PostgreSQL', () => {
  let store: TestStore;
  let a: CliProcess;
  const others: RunningServer[] = [];
  let db: pg.Client;
  const lease = async () => (await db.query(`select holder, epoch, expires_at from controller_leases where name = 'controllers'`)).rows[0];

  beforeAll(async () => {
    store = await testStore('postgres');
    const port = String(await freePort());
    a = runCli([
      'server',
      '--host',
      '127.0.0.1',
      '--port',
      port,
      '--data-dir',
      join(store.dataDir, 'a'),
      '--database-url',
      store.databaseUrl!,
      '--offline-after',
      String(TTL),
      '--log-level',
      'warn',
    ]);
    await a.waitForOutput(/Its API token is in/);
    db = new pg.Client({ connectionString: store.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    for (const s of others) await s.close().catch(() => {});
    await a?.stop('SIGKILL');
    await db?.end();
    await store?.cleanup();
  });

  it('stays with a live holder, moves once within the TTL and a third when the holder dies', async () => {
    const first = await waitFor(() => lease());
    expect(first.epoch).toBe(1);
    for (const name of ['b', 'c'])
      others.push(
        await startServer({
          host: '127.0.0.1',
          port: 0,
          dataDir: join(store.dataDir, name),
          databaseUrl: store.databaseUrl,
          offlineAfterSeconds: TTL,
          logger: pino({ level: 'silent' }),
        }),
      );
    // The claim is that nothing happens: two TTLs give B and C several tries at a lease A keeps renewing.
    await new Promise((r) => setTimeout(r, 2 * TTL * 1000));
    expect(await lease()).toMatchObject({ holder: first.holder, epoch: 1 });

    const killedAt = Date.now();
    await a.stop('SIGKILL');
    const second = await waitFor(async () => {
      const l = await lease();
      return l.holder !== first.holder && l;
    }, 20_000);
    expect(Date.now() - killedAt).toBeLessThanOrEqual(((TTL * 4) / 3) * 1000 + 2000);
    expect(second.epoch).toBe(2);
    const replicas = (await db.query('select id from replicas')).rows.map((r) => r.id);
    expect(replicas).toContain(second.holder);
    // Exactly one taker: after another TTL the same holder, same epoch.
    await new Promise((r) => setTimeout(r, TTL * 1000));
    expect(await lease()).toMatchObject({ holder: second.holder, epoch: 2 });
  });
});
