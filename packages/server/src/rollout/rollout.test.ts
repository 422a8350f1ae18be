import { PRESTAGE_ANNOTATION, type RolloutStatus } from '@edgeplane/protocol';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DIALECTS, type Dialect, type TestStore, testStore } from '../../../../test/support/db.js';
import type { RequestContext } from '../resource/context.js';
import { windowState } from '../site/maintenance-window.js';
import { sites } from '../site/site.service.js';
import { openStore, type Store } from '../store/db.js';
import { migrateToLatest } from '../store/migrations.js';
import { RolloutController } from './rollout.controller.js';
import { rollouts } from './rollout.service.js';
import { SimulatedClusterUpgrades, seedCluster, seedProfileRevisions } from './simulated-upgrades.js';

const log = pino({ level: 'silent' });
const ctx: RequestContext = { user: 'test', role: 'admin', log: log as never };
const MIN = 60_000;

/** A store, a clock the test moves, the rollout controller and the simulated upgrader on that clock. */
async function world(dialect: Dialect, startIso: string, upgradeMinutes = 20) {
  const ts: TestStore = await testStore(dialect);
  const store: Store = openStore({ dataDir: ts.dataDir, databaseUrl: ts.databaseUrl, poolSize: 2 });
  await migrateToLatest(store.db);
  await seedProfileRevisions(store.db, 'edge', [1, 2]);
  let now = Date.parse(startIso);
  const clock = { now: () => new Date(now) };
  const w = {
    db: store.db,
    clock,
    sim: new SimulatedClusterUpgrades(store.db, clock, upgradeMinutes * MIN),
    controller: new RolloutController(store.db, log, { clock }),
    snapshots: [] as { at: number; status: RolloutStatus }[],
    /** Moves the clock, lets the simulated upgrades progress, then runs one controller pass. */
    async tick(minutes: number, rollout = 'ro') {
      now += minutes * MIN;
      await w.sim.tick();
      await w.controller.pass();
      const status = await w.status(rollout);
      w.snapshots.push({ at: now, status });
      return status;
    },
    async status(name = 'ro'): Promise<RolloutStatus> {
      return (await rollouts.get(store.db, name)).status as unknown as RolloutStatus;
    },
    async until(pred: (s: RolloutStatus) => boolean, minutes: number, max: number, rollout = 'ro') {
      for (let i = 0; i < max; i++) {
        const s = await w.tick(minutes, rollout);
        if (pred(s)) return s;
      }
      throw new Error(`condition not reached; last status: ${JSON.stringify(await w.status(rollout)).slice(0, 600)}`);
    },
    async clusterRow(name: string) {
      const r = await store.db.selectFrom('clusters').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
      return { spec: JSON.parse(r.spec), status: JSON.parse(r.status), annotations: JSON.parse(r.annotations) };
    },
    async events(name = 'ro') {
      const rows = await store.db.selectFrom('events').select(['spec', 'status']).where('involved_name', '=', name).execute();
      return rows.map((r) => ({ ...JSON.parse(r.spec), at: Date.parse(JSON.parse(r.status).lastTimestamp) }));
    },
    async close() {
      await store.close();
      await ts.cleanup();
    },
  };
  return w;
}

const rollout = (strategy: Record<string, unknown>, targets: Record<string, unknown> = { selector: 'fleet=shops' }, name = 'ro') => ({
  metadata: { name },
  spec: { targets, profile: { name: 'edge', revision: 2 }, strategy },
});

let w: Awaited<ReturnType<typeof world>> | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const ZONES = [
  { tz: 'America/New_York', region: 'us' },
  { tz: 'Europe/Berlin', region: 'eu' },
  { tz: 'Asia/Tokyo', region: 'ap' },
  { tz: 'Australia/Sydney', region: 'au' },
];

describe.each(DIALECTS)('rollouts (%s)', (dialect) => {
  it('40 sites in 4 timezones: canary first, 25% batches, only inside each site window, disruption budget per region', async () => {
    w = await world(dialect, '2026-03-02T00:00:00Z', 20);
    for (const [z, { tz, region }] of ZONES.entries()) {
      for (let i = 0; i < 10; i++) {
        const name = `shop-${region}-${String(i).padStart(2, '0')}`;
        // Local 02:00-04:00 every night, in each site's own timezone.
        await sites.create(
          w.db,
          { metadata: { name, labels: { region } }, spec: { timezone: tz, maintenanceWindows: [{ schedule: '0 2 * * *', duration: '2h' }] } },
          ctx,
        );
        await seedCluster(w.db, { name: `c-${name}`, profile: 'edge', revision: 1, site: name, labels: { fleet: 'shops' } });
      }
      expect(z).toBeLessThan(4);
    }
    await rollouts.create(
      w.db,
      rollout({
        batches: [{ limit: '5%' }, { limit: '25%' }, { limit: '25%' }, { limit: '100%' }],
        disruptionBudgets: [{ labelKey: 'region', maxUnavailable: 2 }],
        prestageAhead: '1h',
      }),
      ctx,
    );
    const done = await w.until((s) => s.phase === 'Succeeded' || s.phase === 'Failed', 10, 2000);
    expect(done.phase).toBe('Succeeded');
    expect(done.batches.map((b) => b.total)).toEqual([2, 10, 10, 18]);
    expect(done.counts.succeeded).toBe(40);
    for (const c of done.clusters) expect((await w.clusterRow(c.name)).status.profileRevision).toBe(2);

    const siteOf = new Map<string, { tz: string; region: string }>();
    for (const { tz, region } of ZONES) for (let i = 0; i < 10; i++) siteOf.set(`c-shop-${region}-${String(i).padStart(2, '0')}`, { tz, region });
    const events = (await w.events()).filter((e) => /^ClusterUpgrade(Started|d|Failed)$/.test(e.reason));
    const started = events.filter((e) => e.reason === 'ClusterUpgradeStarted');
    expect(started).toHaveLength(40);
    // Every upgrade started inside its own site's window (in that site's timezone).
    for (const e of started) {
      const name = /^cluster (\S+):/.exec(e.message)![1];
      expect(
        windowState(siteOf.get(name)!.tz, [{ schedule: '0 2 * * *', duration: '2h' }], new Date(e.at)).open,
        `${name} at ${new Date(e.at).toISOString()}`,
      ).toBe(true);
    }
    // The disruption budget held at every moment, replaying events (finishes before starts at one instant, as the controller orders them).
    const ordered = [...events].sort((a, b) => a.at - b.at || (a.reason === 'ClusterUpgradeStarted' ? 1 : 0) - (b.reason === 'ClusterUpgradeStarted' ? 1 : 0));
    const inFlight = new Map<string, number>();
    let maxSeen = 0;
    for (const e of ordered) {
      const region = siteOf.get(/^cluster (\S+):/.exec(e.message)![1])!.region;
      inFlight.set(region, (inFlight.get(region) ?? 0) + (e.reason === 'ClusterUpgradeStarted' ? 1 : -1));
      maxSeen = Math.max(maxSeen, inFlight.get(region)!);
      expect(inFlight.get(region)).toBeLessThanOrEqual(2);
    }
    expect(maxSeen).toBe(2);
    // Canary first: no cluster of a later batch started before every canary cluster finished; same for each batch.
    const batchOf = new Map(done.clusters.map((c) => [c.name, c.batch]));
    const startOf = new Map(started.map((e) => [/^cluster (\S+):/.exec(e.message)![1], e.at]));
    const endOf = new Map(events.filter((e) => e.reason !== 'ClusterUpgradeStarted').map((e) => [/^cluster (\S+):/.exec(e.message)![1], e.at]));
    for (let b = 1; b < 4; b++) {
      const prevEnd = Math.max(...done.clusters.filter((c) => c.batch === b - 1).map((c) => endOf.get(c.name)!));
      for (const c of done.clusters.filter((x) => batchOf.get(x.name) === b)) expect(startOf.get(c.name)!).toBeGreaterThanOrEqual(prevEnd);
    }
    // Clusters waited for their window and were pre-staged before it.
    const states = new Set(w.snapshots.flatMap((s) => s.status.clusters.map((c) => c.state)));
    expect(states).toContain('waiting-for-window');
    expect(states).toContain('staging');
  });

  it('a canary failure above the threshold stops the rollout; no further cluster is touched', async () => {
    w = await world(dialect, '2026-03-02T00:00:00Z', 10);
    for (let i = 0; i < 20; i++) await seedCluster(w.db, { name: `c${String(i).padStart(2, '0')}`, profile: 'edge', revision: 1, labels: { fleet: 'shops' } });
    w.sim.failing.add('c00');
    await rollouts.create(w.db, rollout({ batches: [{ limit: '10%' }, { limit: '100%' }] }), ctx);
    const s = await w.until((x) => x.phase === 'Failed', 5, 50);
    expect(s.stopReason).toBe('BatchFailed');
    expect(s.clusters.find((c) => c.name === 'c00')).toMatchObject({ state: 'failed', reason: 'UpgradeFailed' });
    expect(s.clusters.filter((c) => c.batch === 1).every((c) => c.state === 'skipped')).toBe(true);
    for (let i = 2; i < 20; i++) {
      const row = await w.clusterRow(`c${String(i).padStart(2, '0')}`);
      expect(row.spec.profile.revision).toBe(1);
      expect(row.annotations[PRESTAGE_ANNOTATION]).toBeUndefined();
    }
    // Failed is final: more passes change nothing.
    await w.tick(60);
    expect((await w.clusterRow('c05')).spec.profile.revision).toBe(1);
  });

  it('maxFailures stops the whole rollout midway through a batch', async () => {
    w = await world(dialect, '2026-03-02T00:00:00Z', 10);
    for (let i = 0; i < 10; i++) await seedCluster(w.db, { name: `c${i}`, profile: 'edge', revision: 1, labels: { fleet: 'shops' } });
    w.sim.failing.add('c0');
    w.sim.failing.add('c1');
    await rollouts.create(w.db, rollout({ batches: [{ limit: '100%', successThreshold: '50%' }], maxParallel: 2, maxFailures: 1 }), ctx);
    const s = await w.until((x) => x.phase === 'Failed', 5, 50);
    expect(s.stopReason).toBe('FailureThresholdExceeded');
    expect(s.counts).toMatchObject({ failed: 2, skipped: 8 });
  });

  it('approval between batches; abort leaves every cluster on the old or the new revision; a restart resumes', async () => {
    w = await world(dialect, '2026-03-02T00:00:00Z', 30);
    for (let i = 0; i < 12; i++) await seedCluster(w.db, { name: `c${String(i).padStart(2, '0')}`, profile: 'edge', revision: 1, labels: { fleet: 'shops' } });
    await rollouts.create(w.db, rollout({ batches: [{ limit: 2 }, { limit: 4 }, { limit: '100%' }], requireApproval: true, maxParallel: 3 }), ctx);
    let s = await w.until((x) => x.phase === 'AwaitingApproval', 10, 20);
    expect(s.batches[0].phase).toBe('Succeeded');
    await w.tick(60);
    expect((await w.status()).clusters.filter((c) => c.batch === 1).map((c) => c.state)).toEqual(['pending', 'pending', 'pending', 'pending']);
    await expect(rollouts.action(w.db, 'ro', 'approve', ctx)).resolves.toBeDefined();
    await expect(rollouts.action(w.db, 'ro', 'approve', ctx)).rejects.toMatchObject({ code: 'InvalidState' });
    // A new controller instance (a restarted server) carries on from the stored status.
    w.controller = new RolloutController(w.db, log, { clock: w.clock });
    s = await w.until((x) => x.phase === 'AwaitingApproval', 10, 30);
    expect(s.currentBatch).toBe(2);
    await rollouts.action(w.db, 'ro', 'approve', ctx);
    s = await w.until((x) => x.counts.upgrading === 3, 1, 10);
    await rollouts.action(w.db, 'ro', 'abort', ctx);
    s = await w.tick(1);
    expect(s.phase).toBe('Stopping');
    s = await w.until((x) => x.phase === 'Aborted', 10, 20);
    expect(s.counts).toMatchObject({ succeeded: 9, skipped: 3 });
    for (let i = 0; i < 12; i++) {
      const row = await w.clusterRow(`c${String(i).padStart(2, '0')}`);
      const onOld = row.spec.profile.revision === 1 && row.status.profileRevision === 1;
      const onNew = row.spec.profile.revision === 2 && row.status.profileRevision === 2;
      expect(onOld || onNew).toBe(true);
    }
  });

  it('a cluster already in another unfinished rollout is not taken twice; pause holds new starts', async () => {
    w = await world(dialect, '2026-03-02T00:00:00Z', 30);
    for (let i = 0; i < 4; i++) await seedCluster(w.db, { name: `c${i}`, profile: 'edge', revision: 1, labels: { fleet: 'shops' } });
    await rollouts.create(w.db, rollout({ batches: [{ limit: '100%' }], maxParallel: 1 }, { names: ['c0', 'c1'] }, 'first'), ctx);
    await w.tick(1, 'first');
    // A cluster naming a Site that does not exist is skipped: its windows are unknown.
    await seedCluster(w.db, { name: 'c9', profile: 'edge', revision: 1, site: 'no-such-site', labels: { fleet: 'shops' } });
    await rollouts.create(w.db, rollout({ batches: [{ limit: '100%' }] }, { selector: 'fleet=shops' }, 'second'), ctx);
    await rollouts.action(w.db, 'second', 'pause', ctx);
    const second = await w.tick(1, 'second');
    expect(second.phase).toBe('Paused');
    expect(second.clusters.filter((c) => c.reason === 'InAnotherRollout').map((c) => c.name)).toEqual(['c0', 'c1']);
    expect(second.clusters.find((c) => c.name === 'c0')?.message).toContain('rollout first');
    expect((await w.clusterRow('c2')).spec.profile.revision).toBe(1);
    expect(second.clusters.find((c) => c.name === 'c9')).toMatchObject({ state: 'skipped', reason: 'SiteNotFound' });
    await rollouts.action(w.db, 'second', 'resume', ctx);
    const done = await w.until((x) => x.phase === 'Succeeded', 10, 20, 'second');
    expect(done.counts).toMatchObject({ succeeded: 2, skipped: 3 });
    expect((await w.clusterRow('c9')).spec.profile.revision).toBe(1);
    await w.until((x) => x.phase === 'Succeeded', 10, 20, 'first');
  });
});
