import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '@edgeplane/server';
import pino from 'pino';
import { launchChromium } from '../test/support/browser.js';
import { insertHosts } from '../test/support/seed-hosts.js';
import { insertSites, seededSiteName, spreadSites } from '../test/support/seed-sites.js';
import type { BenchResult } from './run.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const RUNS = 7;

/**
 * The console's Overview with BENCH_MAP_SITES sites (default 10,000), each with one host (every 50th
 * offline), in the store (SQLite), in Debian's Chromium: time from navigation until the site map has
 * drawn its sites and the browser painted the frame (target: under 1500 ms), and the fleet summary
 * request on its own. Median of RUNS cold page loads.
 */
export async function consoleOverviewMap(): Promise<BenchResult> {
  const count = Number(process.env.BENCH_MAP_SITES ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-'));
  const server = await startServer({ host: '127.0.0.1', port: 0, dataDir: dir, logger: pino({ level: 'silent' }) });
  const browser = await launchChromium();
  try {
    const store = { dataDir: dir, dialect: 'sqlite' as const, cleanup: async () => {} };
    await insertSites(store, spreadSites(count));
    await insertHosts(
      store,
      Array.from({ length: count }, (_, i) => ({
        name: `edge-${String(i).padStart(5, '0')}`,
        site: seededSiteName(i),
        connectivity: i % 50 === 7 ? ('offline' as const) : ('online' as const),
      })),
    );
    // The machine's load when the runs start: on a shared machine it explains much of the spread.
    const load = loadavg()[0];
    const summaryMs: number[] = [];
    let summaryBytes = 0;
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const res = await fetch(`${server.url}/api/v1/fleet/summary`, { headers: { authorization: `Bearer ${server.adminToken}` } });
      summaryBytes = (await res.arrayBuffer()).byteLength;
      summaryMs.push(performance.now() - t0);
    }
    const firstPaint: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await ctx.addInitScript((token) => sessionStorage.setItem('edgeplane.token', token), server.adminToken!);
      const page = await ctx.newPage();
      const t0 = performance.now();
      await page.goto(`${server.url}/`);
      await page.locator('canvas[data-drawn]').waitFor();
      // The frame with the dots is on screen once the next animation frame starts.
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      firstPaint.push(performance.now() - t0);
      await ctx.close();
    }
    return {
      name: 'console-overview-map',
      description: `Console Overview site map in headless Chromium with ${count} sites (one host each) in the store (SQLite), median of ${RUNS} cold loads. Target: map painted in under 1500 ms.`,
      metrics: {
        sites: count,
        map_first_paint_ms: Math.round(median(firstPaint)),
        map_first_paint_max_ms: Math.round(Math.max(...firstPaint)),
        fleet_summary_ms: Math.round(median(summaryMs)),
        fleet_summary_kib: Math.round(summaryBytes / 1024),
        load_average_1m: Math.round(load * 10) / 10,
      },
    };
  } finally {
    await browser.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
