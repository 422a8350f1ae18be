import { join } from 'node:path';
import { startFleet } from '@edgeplane/sim';
import { startBenchServer } from './bench-server.js';
import type { BenchResult } from './run.js';

const mib = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Math.round(performance.now() - t0);
}

/**
 * One server process (SQLite, or PostgreSQL with BENCH_DATABASE_URL) and a simulated fleet of
 * BENCH_AGENTS agents (default 1000) in the same process on loopback: registration + connect time,
 * time until the API shows every host online, list latency over the whole fleet, memory per agent
 * connection, and how long the server takes to see the fleet go offline.
 */
export async function fleetConnect(): Promise<BenchResult> {
  const agents = Number(process.env.BENCH_AGENTS ?? 1000);
  const { server, dir, logger, auth, close } = await startBenchServer({ offlineAfterSeconds: 30 });
  try {
    const tok = await (
      await fetch(`${server.url}/api/v1/registrationtokens`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ metadata: { name: 'bench' }, spec: { autoApprove: true } }),
      })
    ).json();
    const before = process.memoryUsage();
    const listAll = async () => {
      const items: { status: { connectivity: string } }[] = [];
      let cont = '';
      do {
        const page = await (await fetch(`${server.url}/api/v1/edgehosts?limit=1000${cont ? `&continue=${cont}` : ''}`, { headers: auth })).json();
        items.push(...page.items);
        cont = page.metadata.continue ?? '';
      } while (cont);
      return items;
    };
    const t0 = performance.now();
    const fleet = await startFleet({
      server: server.url,
      token: tok.status.token,
      sites: agents,
      nodesPerSite: 1,
      dataDir: join(dir, 'sim'),
      logger,
      concurrency: 100,
    });
    await fleet.waitUntilConnected(120_000);
    const connectedMs = Math.round(performance.now() - t0);
    const apiOnlineMs = connectedMs + (await until(async () => (await listAll()).filter((h) => h.status.connectivity === 'online').length === agents, 60_000));
    const after = process.memoryUsage();
    const l0 = performance.now();
    await listAll();
    const listMs = Math.round(performance.now() - l0);
    await fleet.stop();
    const offlineMs = await until(async () => (await listAll()).every((h) => h.status.connectivity === 'offline'), 60_000);
    return {
      name: 'fleet-connect',
      description: `${agents} simulated agents register and connect to one server (${process.env.BENCH_DATABASE_URL ? 'PostgreSQL' : 'SQLite'}), all in one process on loopback.`,
      metrics: {
        agents,
        'all agents connected (ms)': connectedMs,
        'API shows all online (ms)': apiOnlineMs,
        'registrations per second': Math.round((agents / connectedMs) * 1000),
        'list all hosts (ms)': listMs,
        'offline seen after stop (ms)': offlineMs,
        'heap growth (MiB)': mib(after.heapUsed - before.heapUsed),
        'rss growth (MiB)': mib(after.rss - before.rss),
        'rss growth per agent, server and agent together (KiB)': Math.round((after.rss - before.rss) / agents / 1024),
      },
    };
  } finally {
    await close();
  }
}
