import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '@edgeplane/server';
import pino from 'pino';
import { seedHosts } from '../test/support/seed-hosts.js';
import type { BenchResult } from './run.js';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const r2 = (n: number) => Math.round(n * 100) / 100;

/**
 * API listing at fleet size: BENCH_API_HOSTS (default 10,000) hosts seeded into the store, then
 * 50 requests each of: one page of 500, a label-selected page (site=site-7: 1 in 50 hosts), and a
 * rare label (rack=r7: 1 in 100, so the server reads far to fill a page). p50/p99 in ms.
 * PostgreSQL with BENCH_DATABASE_URL (an empty database).
 */
export async function apiList(): Promise<BenchResult> {
  const n = Number(process.env.BENCH_API_HOSTS ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-api-'));
  const databaseUrl = process.env.BENCH_DATABASE_URL;
  const server = await startServer({ host: '127.0.0.1', port: 0, dataDir: dir, databaseUrl, logger: pino({ level: 'silent' }) });
  try {
    await seedHosts({ dataDir: dir, dialect: databaseUrl ? 'postgres' : 'sqlite', databaseUrl, cleanup: async () => {} }, n);
    const headers = { authorization: `Bearer ${server.adminToken}` };
    const measure = async (path: string) => {
      const times: number[] = [];
      let items = 0;
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        const body = (await (await fetch(`${server.url}${path}`, { headers })).json()) as { items: unknown[] };
        times.push(performance.now() - t0);
        items = body.items.length;
      }
      return { p50: r2(pct(times, 50)), p99: r2(pct(times, 99)), items };
    };
    const page = await measure('/api/v1/edgehosts?limit=500');
    const site = await measure('/api/v1/edgehosts?limit=500&labelSelector=site%3Dsite-7');
    const rack = await measure('/api/v1/edgehosts?limit=500&labelSelector=rack%3Dr7');
    return {
      name: 'api-list',
      description: `Listing and filtering ${n} hosts through the API (${databaseUrl ? 'PostgreSQL' : 'SQLite'}), 50 requests each, ms.`,
      metrics: {
        hosts: n,
        'page of 500 p50': page.p50,
        'page of 500 p99': page.p99,
        [`labelSelector site=site-7 (${site.items} items) p50`]: site.p50,
        [`labelSelector site=site-7 p99`]: site.p99,
        [`labelSelector rack=r7 (${rack.items} items) p50`]: rack.p50,
        [`labelSelector rack=r7 p99`]: rack.p99,
      },
    };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
