import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '@edgeplane/server';
import pino from 'pino';
import { launchChromium } from '../test/support/browser.js';
import { seededName, seedHosts } from '../test/support/seed-hosts.js';
import type { BenchResult } from './run.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The console's hosts page with BENCH_CONSOLE_HOSTS hosts (default 10,000) in the store (SQLite), in
 * Debian's Chromium: time from navigation until the first rows are on screen (target: under 1 s), and
 * until the next page has loaded after scrolling to the end. Median of 5 cold page loads.
 */
export async function consoleHosts(): Promise<BenchResult> {
  const hosts = Number(process.env.BENCH_CONSOLE_HOSTS ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-'));
  const server = await startServer({ host: '127.0.0.1', port: 0, dataDir: dir, logger: pino({ level: 'silent' }) });
  const browser = await launchChromium();
  try {
    await seedHosts({ dataDir: dir, dialect: 'sqlite', cleanup: async () => {} }, hosts);
    const firstRows: number[] = [];
    const nextPage: number[] = [];
    for (let i = 0; i < 5; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await ctx.addInitScript((token) => sessionStorage.setItem('edgeplane.token', token), server.adminToken!);
      const page = await ctx.newPage();
      const t0 = performance.now();
      await page.goto(`${server.url}/hosts`);
      await page.locator(`tr[data-row="${seededName(0)}"]`).waitFor();
      firstRows.push(performance.now() - t0);
      const t1 = performance.now();
      await page.getByTestId('table-edgehosts').evaluate((el) => el.scrollTo(0, el.scrollHeight));
      await page.getByText('400 edgehosts loaded', { exact: false }).waitFor();
      nextPage.push(performance.now() - t1);
      await ctx.close();
    }
    return {
      name: 'console-hosts',
      description: `Console hosts page in headless Chromium with ${hosts} hosts in the store (SQLite), median of 5 cold loads. Target: first rows in under 1000 ms.`,
      metrics: {
        hosts,
        first_rows_ms: Math.round(median(firstRows)),
        first_rows_max_ms: Math.round(Math.max(...firstRows)),
        next_page_after_scroll_ms: Math.round(median(nextPage)),
      },
    };
  } finally {
    await browser.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
