import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { RolloutController } from '../packages/server/src/rollout/rollout.controller.js';
import { rollouts } from '../packages/server/src/rollout/rollout.service.js';
import { SimulatedClusterUpgrades, seedCluster, seedProfileRevisions } from '../packages/server/src/rollout/simulated-upgrades.js';
import { sites } from '../packages/server/src/site/site.service.js';
import { openStore } from '../packages/server/src/store/db.js';
import { migrateToLatest } from '../packages/server/src/store/migrations.js';
import type { BenchResult } from './run.js';

const ZONES = ['America/New_York', 'Europe/Berlin', 'Asia/Tokyo', 'Australia/Sydney'];

/**
 * Rollout over BENCH_ROLLOUT_SITES (default 1000) single-node sites, each with its own Site (4
 * timezones, an hourly window that is always open so the policy's ideal is well defined), batches
 * 1% / 10% / rest, upgrades simulated (SimulatedClusterUpgrades: each takes 5 minutes of clock time).
 * The clock moves 1 minute per pass. Reports simulated time from start to done against the ideal
 * (3 batches x 5 minutes) and the controller's CPU time per site-step (a cluster changing state).
 */
export async function rolloutBench(): Promise<BenchResult> {
  const n = Number(process.env.BENCH_ROLLOUT_SITES ?? 1000);
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-rollout-'));
  const store = openStore({ dataDir: dir, databaseUrl: process.env.BENCH_DATABASE_URL });
  const log = pino({ level: 'silent' });
  const ctx = { user: 'bench', role: 'admin' as const, log: log as never };
  try {
    await migrateToLatest(store.db);
    await seedProfileRevisions(store.db, 'edge', [1, 2]);
    for (let i = 0; i < n; i++) {
      const name = `site-${String(i).padStart(5, '0')}`;
      await sites.create(
        store.db,
        {
          metadata: { name, labels: { region: `r${i % 8}` } },
          spec: { timezone: ZONES[i % 4], maintenanceWindows: [{ schedule: '0 * * * *', duration: '60m' }] },
        },
        ctx,
      );
      await seedCluster(store.db, { name: `c-${name}`, profile: 'edge', revision: 1, site: name, labels: { fleet: 'bench' } });
    }
    let now = Date.parse('2026-06-01T00:00:00Z');
    const clock = { now: () => new Date(now) };
    const upgradeMin = 5;
    const sim = new SimulatedClusterUpgrades(store.db, clock, upgradeMin * 60_000);
    const controller = new RolloutController(store.db, log, { clock });
    await rollouts.create(
      store.db,
      {
        metadata: { name: 'bench' },
        spec: {
          targets: { selector: 'fleet=bench' },
          profile: { name: 'edge', revision: 2 },
          strategy: { batches: [{ limit: '1%' }, { limit: '10%' }, { limit: '100%' }] },
        },
      },
      ctx,
    );
    const start = now;
    let cpuMicros = 0;
    let passes = 0;
    let wallMs = 0;
    let phase = '';
    for (let i = 0; i < 200 && phase !== 'Succeeded' && phase !== 'Failed'; i++) {
      await sim.tick();
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      await controller.pass();
      wallMs += performance.now() - w0;
      const c = process.cpuUsage(c0);
      cpuMicros += c.user + c.system;
      passes++;
      phase = ((await rollouts.get(store.db, 'bench')).status as { phase: string }).phase;
      if (phase !== 'Succeeded') now += 60_000;
    }
    const events = await store.db.selectFrom('events').select('spec').where('involved_name', '=', 'bench').execute();
    // Site-steps: each cluster state change the controller made (started, finished) from its events.
    const steps = events.filter((e) => /"reason":"Cluster(UpgradeStarted|Upgraded|UpgradeFailed)"/.test(e.spec)).length;
    const minutes = (now - start) / 60_000;
    return {
      name: 'rollout',
      description: `Rollout over ${n} single-node sites (${store.dialect}), batches 1% / 10% / rest, simulated upgrades of ${upgradeMin} min, clock stepped 1 min per controller pass.`,
      metrics: {
        sites: n,
        phase: phase === 'Succeeded' ? 1 : 0,
        'simulated minutes start to done': minutes,
        'policy ideal (minutes)': 3 * upgradeMin,
        'controller passes': passes,
        'site-steps': steps,
        'controller CPU per site-step (ms)': Math.round((cpuMicros / 1000 / Math.max(steps, 1)) * 1000) / 1000,
        'controller wall time total (ms)': Math.round(wallMs),
        'controller wall per pass (ms)': Math.round(wallMs / passes),
      },
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
