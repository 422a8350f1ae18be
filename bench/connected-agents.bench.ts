import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, register, TestDevice } from '../test/support/device.js';
import freePort from '../test/support/free-port.js';
import type { BenchResult } from './run.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = fileURLToPath(new URL('../packages/cli/src/bin.ts', import.meta.url));
const mib = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

/**
 * Connected agents: the server (`edgeplane server`) and the simulator (`edgeplane sim`) each in
 * their own process, for each N in BENCH_CONNECTED (default "1000,5000"; add 10000 on a bigger run). Once all
 * N are connected and heartbeating (every 10 s), measures over a steady window: server RSS growth per
 * agent, server CPU, and the heartbeat round trip seen by one extra probe agent (WebSocket ping/pong
 * through the server's event loop while it handles the fleet's heartbeats), p50/p99.
 */
export async function connectedAgents(): Promise<BenchResult> {
  const sizes = (process.env.BENCH_CONNECTED ?? '1000,5000').split(',').map(Number);
  const metrics: Record<string, number> = {};
  for (const n of sizes) Object.assign(metrics, await runOne(n));
  return {
    name: 'connected-agents',
    description: `N simulated agents (simulator in a separate process) connected to one server process (${process.env.BENCH_DATABASE_URL ? 'PostgreSQL' : 'SQLite'}), heartbeat every 10 s; RSS and CPU are the server process's (read from /proc).`,
    metrics,
  };
}

/** RSS (bytes) and CPU time (s) of a process, from /proc (Linux). */
function procStats(pid: number): { rss: number; cpuS: number } {
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  // Fields after the command name: utime and stime are the 12th and 13th (clock ticks, 100/s).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rss: rssKb * 1024, cpuS: (Number(f[11]) + Number(f[12])) / 100 };
}

async function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGINT');
  await Promise.race([exited, sleep(15_000)]);
  if (p.exitCode === null) p.kill('SIGKILL');
}

async function runOne(n: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-agents-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // The server in its own process (one node process: tsx as an import hook), so RSS and CPU are its alone.
  const dbArgs = process.env.BENCH_DATABASE_URL ? ['--database-url', process.env.BENCH_DATABASE_URL] : [];
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', cli, 'server', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(dir, 'server'), '--offline-after', '30', ...dbArgs],
    {
      stdio: 'ignore',
      cwd: root,
    },
  );
  let sim: ChildProcess | undefined;
  try {
    const t00 = performance.now();
    for (;;) {
      const ok = await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (performance.now() - t00 > 60_000) throw new Error('server did not start');
      await sleep(200);
    }
    const admin = readFileSync(join(dir, 'server', 'admin-token'), 'utf8').trim();
    const auth = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const tok = await (
      await fetch(`${url}/api/v1/registrationtokens`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ metadata: { name: 'bench' }, spec: { autoApprove: true } }),
      })
    ).json();
    await sleep(3000); // startup garbage collected before the baseline
    const base = procStats(server.pid!);
    const t0 = performance.now();
    sim = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        cli,
        'sim',
        '--server',
        url,
        '--token',
        tok.status.token,
        '--sites',
        String(n),
        '--data-dir',
        join(dir, 'sim'),
        '--log-level',
        'error',
      ],
      {
        stdio: 'ignore',
        cwd: root,
      },
    );
    const connected = async () => ((await (await fetch(`${url}/readyz`)).json()) as { agentsConnected: number }).agentsConnected;
    while ((await connected()) < n) {
      if (performance.now() - t0 > 240_000) throw new Error(`only ${await connected()}/${n} agents connected after 240 s`);
      await sleep(500);
    }
    const connectMs = performance.now() - t0;
    // The probe: one more device, connected by hand, that measures round trips through the server.
    const dev = await TestDevice.create();
    const reg = await register(url, await dev.registerBody(tok.status.token));
    const { ws, messages } = await connect(url, await dev.connectToken(reg.body.hostName));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'bench' }));
    while (!messages.some((m) => m.type === 'welcome')) await sleep(20);
    await sleep(2000); // let connect-time writes settle
    const s0 = procStats(server.pid!);
    const w0 = performance.now();
    const rtts: number[] = [];
    while (performance.now() - w0 < 20_000) {
      const s = performance.now();
      await new Promise<void>((resolve) => {
        ws.once('pong', () => resolve());
        ws.send(JSON.stringify({ type: 'heartbeat' }));
        ws.ping();
      });
      rtts.push(performance.now() - s);
      await sleep(50);
    }
    const s1 = procStats(server.pid!);
    const windowS = (performance.now() - w0) / 1000;
    ws.close();
    const k = `N=${n}`;
    return {
      [`${k} connect all (s)`]: Math.round(connectMs / 100) / 10,
      [`${k} server RSS (MiB)`]: mib(s1.rss),
      [`${k} server RSS per agent (KiB)`]: Math.round((s1.rss - base.rss) / n / 1024),
      [`${k} server CPU steady (% of one core)`]: Math.round(((s1.cpuS - s0.cpuS) / windowS) * 1000) / 10,
      [`${k} heartbeat round trip p50 (ms)`]: Math.round(pct(rtts, 50) * 100) / 100,
      [`${k} heartbeat round trip p99 (ms)`]: Math.round(pct(rtts, 99) * 100) / 100,
    };
  } finally {
    await stop(sim);
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
  }
}
