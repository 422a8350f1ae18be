import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startBenchServer } from './bench-server.js';
import type { BenchResult } from './run.js';

const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));
const client = fileURLToPath(new URL('./storm-client.ts', import.meta.url));

function runClient(env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(tsx, [client], { env: { ...process.env, ...env }, timeout: 300_000, maxBuffer: 1 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}

/**
 * Registration storm: BENCH_STORM_DEVICES (default 2000) devices, prepared by a separate client
 * process (bench/storm-client.ts: real keys and signed proofs), all register at once against one server whose registration gate admits BENCH_STORM_CONCURRENCY
 * (default 64) at a time. Refused devices get 429 RateLimited + Retry-After and retry. Reports
 * registrations per second until the last one and how many were lost (must be 0).
 */
export async function registrationStorm(): Promise<BenchResult> {
  const n = Number(process.env.BENCH_STORM_DEVICES ?? 2000);
  const concurrency = Number(process.env.BENCH_STORM_CONCURRENCY ?? 64);
  const { server, dir, logger, auth, close } = await startBenchServer({ registrationConcurrency: concurrency });
  const count = async (result: string) => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(new RegExp(`edgeplane_registrations_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };
  try {
    const tok = await (
      await fetch(`${server.url}/api/v1/registrationtokens`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ metadata: { name: 'storm' }, spec: { autoApprove: true } }),
      })
    ).json();
    const out = await runClient({ STORM_SERVER: server.url, STORM_TOKEN: tok.status.token, STORM_DEVICES: String(n) });
    const r = JSON.parse(out) as { elapsedMs: number; refused: number; failed: number; registered: number; lost: number };
    const created = await count('created');
    const hosts = await (await fetch(`${server.url}/api/v1/edgehosts?limit=1`, { headers: auth })).json();
    return {
      name: 'registration-storm',
      description: `${n} simulated devices register at once with one server (${process.env.BENCH_DATABASE_URL ? 'PostgreSQL' : 'SQLite'}), registration concurrency ${concurrency}; refused ones get 429 + Retry-After and retry.`,
      metrics: {
        devices: n,
        'registration concurrency': concurrency,
        'all registered (ms)': Math.round(r.elapsedMs),
        'registrations per second': Math.round((r.registered / r.elapsedMs) * 1000),
        '429 answers': r.refused,
        'other failed attempts': r.failed,
        'hosts created on the server': created,
        lost: r.lost,
        'API lists hosts': hosts.items.length > 0 ? 1 : 0,
      },
    };
  } finally {
    await close();
  }
}
