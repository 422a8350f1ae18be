import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect, register, TestDevice } from '../test/support/device.js';
import { startEmbeddedPostgres } from '../test/support/embedded-postgres.js';
import freePort from '../test/support/free-port.js';
import { type Haproxy, startHaproxy } from '../test/support/haproxy.js';
import type { BenchResult } from './run.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = fileURLToPath(new URL('../packages/cli/src/bin.ts', import.meta.url));
const mib = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
const OFFLINE_AFTER = 30;
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));
const stormClient = fileURLToPath(new URL('./storm-client.ts', import.meta.url));

/** CPU time (s) of a process, from /proc: utime + stime, the 14th and 15th fields (clock ticks, 100/s). */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** The registration storm (bench/storm-client.ts) in its own process against `server`. */
function storm(
  server: string,
  token: string,
  devices: number,
): Promise<{ elapsedMs: number; refused: number; failed: number; registered: number; lost: number }> {
  return new Promise((resolve, reject) =>
    execFile(
      tsx,
      [stormClient],
      { env: { ...process.env, STORM_SERVER: server, STORM_TOKEN: token, STORM_DEVICES: String(devices) }, timeout: 600_000, maxBuffer: 1 << 20 },
      (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout))),
    ),
  );
}

/**
 * Replicas side by side with a single server, in the same run, on PostgreSQL (BENCH_DATABASE_URL's
 * server, else an embedded PostgreSQL started for the run; each mode gets an empty database): one
 * `edgeplane server`, then three behind HAProxy (health checks on /readyz). In each mode:
 *  1. a registration storm through the front: BENCH_REPLICAS_STORM devices (default 2000; keys and
 *     signed proofs made beforehand by bench/storm-client.ts in its own process) register at once,
 *     each 429 retried after its Retry-After; registrations/s and lost devices;
 *  2. N simulated agents (BENCH_REPLICAS_AGENTS, default 5000; `edgeplane sim` in its own process)
 *     register and connect through the front: time, RSS of each server process, the simulator's CPU
 *     and RSS, and the heartbeat round trip of a probe agent through the front;
 *  3. three replicas only: failover after kill -9 of the replica holding most agents.
 * BENCH_CPU_PROF=<dir> writes a V8 CPU profile of every server process there (node --cpu-prof).
 */
export async function replicasBench(): Promise<BenchResult> {
  const n = Number(process.env.BENCH_REPLICAS_AGENTS ?? 5000);
  const stormN = Number(process.env.BENCH_REPLICAS_STORM ?? 2000);
  const pgServer = await postgres();
  try {
    const single = await runMode(n, stormN, 1, await pgServer.database('bench_single'));
    const three = await runMode(n, stormN, 3, await pgServer.database('bench_replicas'));
    return {
      name: 'replicas',
      description: `One server process, then three replicas behind HAProxy, on PostgreSQL, in the same run: a registration storm of ${stormN} devices through the front, then ${n} simulated agents (simulator in its own process, heartbeat every 10 s) connected through it, then (three replicas) kill -9 of the replica holding most agents. RSS and CPU from /proc; the probe's round trip goes through the front (HAProxy for three).`,
      metrics: { ...single, ...three },
    };
  } finally {
    await pgServer.stop();
  }
}

/** RSS (bytes) of a process, from /proc (Linux). */
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

async function stop(p: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (!p || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill(signal);
  await Promise.race([exited, sleep(15_000)]);
  if (p.exitCode === null) p.kill('SIGKILL');
}

/** A PostgreSQL server for the run: BENCH_DATABASE_URL's, or an embedded one. */
async function postgres(): Promise<{ database(name: string): Promise<string>; stop(): Promise<void> }> {
  let admin = process.env.BENCH_DATABASE_URL;
  let stopEmbedded = async () => {};
  if (!admin) {
    const embedded = await startEmbeddedPostgres('edgeplane-bench-pg-');
    admin = embedded.url;
    stopEmbedded = embedded.stop;
  }
  const url = admin;
  const run = async (sql: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const made: string[] = [];
  return {
    async database(name) {
      await run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await run(`CREATE DATABASE ${name}`);
      made.push(name);
      return url.replace(/\/[^/]*$/, `/${name}`);
    },
    async stop() {
      for (const name of made) await run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await stopEmbedded();
    },
  };
}

async function runMode(n: number, stormN: number, replicas: number, databaseUrl: string): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-replicas-'));
  const servers: { proc: ChildProcess; url: string }[] = [];
  let lb: Haproxy | undefined;
  let sim: ChildProcess | undefined;
  const k = replicas === 1 ? 'single' : `${replicas} replicas`;
  try {
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const args = ['server', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(dir, `server-${i}`), '--database-url', databaseUrl];
      const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
      const proc = spawn(process.execPath, [...prof, '--import', 'tsx', cli, ...args, '--offline-after', String(OFFLINE_AFTER)], {
        stdio: 'ignore',
        cwd: root,
        env: { ...process.env, EDGEPLANE_REPLICA_SECRET: 'bench-replica-secret' },
      });
      servers.push({ proc, url });
      // One after the other: the first creates the admin user (and its token file).
      const t0 = performance.now();
      while (
        !(await fetch(`${url}/readyz`).then(
          (r) => r.ok,
          () => false,
        ))
      ) {
        if (performance.now() - t0 > 60_000) throw new Error('server did not start');
        await sleep(200);
      }
    }
    if (replicas > 1)
      lb = await startHaproxy(
        servers.map((s, i) => ({ name: `r${i}`, url: s.url })),
        { checkIntervalMs: 1000, maxConn: 8000 },
      );
    const front = lb?.url ?? servers[0].url;
    const admin = readFileSync(join(dir, 'server-0', 'admin-token'), 'utf8').trim();
    const auth = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const tok = await (
      await fetch(`${front}/api/v1/registrationtokens`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ metadata: { name: 'bench' }, spec: { autoApprove: true } }),
      })
    ).json();
    const live = () => servers.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null);
    const connected = async () => {
      let sum = 0;
      for (const s of live()) sum += ((await (await fetch(`${s.url}/readyz`)).json()) as { agentsConnected?: number }).agentsConnected ?? 0;
      return sum;
    };
    const out: Record<string, number> = {};
    if (stormN > 0) {
      const r = await storm(front, tok.status.token, stormN);
      Object.assign(out, {
        [`${k}: storm, devices registering at once`]: stormN,
        [`${k}: storm, registrations/s`]: Math.round((r.registered / r.elapsedMs) * 1000),
        [`${k}: storm, all registered (s)`]: round(r.elapsedMs / 1000),
        [`${k}: storm, 429 answers (Retry-After honoured)`]: r.refused,
        [`${k}: storm, other failed attempts`]: r.failed,
        [`${k}: storm, lost`]: r.lost,
      });
    }
    const t0 = performance.now();
    sim = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        cli,
        'sim',
        '--server',
        front,
        '--token',
        tok.status.token,
        '--sites',
        String(n),
        '--data-dir',
        join(dir, 'sim'),
        '--log-level',
        'error',
      ],
      { stdio: 'ignore', cwd: root },
    );
    const connectLimitS = Number(process.env.BENCH_REPLICAS_CONNECT_LIMIT_S ?? 600);
    // Bounded: past the limit the count reached is the result (and the rest of the run uses it).
    let reached = 0;
    while ((reached = await connected()) < n) {
      if (performance.now() - t0 > connectLimitS * 1000) break;
      await sleep(500);
    }
    const connectS = (performance.now() - t0) / 1000;
    const simCpuS = cpuOf(sim.pid!);
    const simRss = rssOf(sim.pid!);
    const serverCpuS = servers.reduce((sum, s) => sum + cpuOf(s.proc.pid!), 0);
    // The probe: one more device, connected by hand through the front, measuring round trips.
    const dev = await TestDevice.create();
    const reg = await register(front, await dev.registerBody(tok.status.token));
    const { ws, messages } = await connect(front, await dev.connectToken(reg.body.hostName));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'bench' }));
    while (!messages.some((m) => m.type === 'welcome')) await sleep(20);
    await sleep(2000);
    const rtts: number[] = [];
    const w0 = performance.now();
    while (performance.now() - w0 < 15_000) {
      const s = performance.now();
      await new Promise<void>((resolve) => {
        ws.once('pong', () => resolve());
        ws.send(JSON.stringify({ type: 'heartbeat' }));
        ws.ping();
      });
      rtts.push(performance.now() - s);
      await sleep(50);
    }
    ws.close();
    const rss = servers.map((s) => rssOf(s.proc.pid!));
    const perReplica = await Promise.all(
      servers.map(async (s) => ((await (await fetch(`${s.url}/readyz`)).json()) as { agentsConnected: number }).agentsConnected),
    );
    Object.assign(out, {
      [`${k}: agents connected (of ${n})`]: reached,
      [`${k}: register + connect (s)`]: round(connectS),
      [`${k}: agents connected per second`]: Math.round(reached / connectS),
      [`${k}: simulator CPU while connecting (s)`]: round(simCpuS),
      [`${k}: servers' CPU from start to all connected (s)`]: round(serverCpuS),
      [`${k}: simulator RSS (MiB)`]: mib(simRss),
      [`${k}: server RSS, largest process (MiB)`]: mib(Math.max(...rss)),
      [`${k}: server RSS, all processes (MiB)`]: mib(rss.reduce((a, b) => a + b, 0)),
      [`${k}: heartbeat round trip p50 (ms)`]: round(pct(rtts, 50), 2),
      [`${k}: heartbeat round trip p99 (ms)`]: round(pct(rtts, 99), 2),
    });
    for (const [i, r] of rss.entries()) {
      if (replicas === 1) break;
      out[`${k}: replica ${i + 1} agents`] = perReplica[i];
      out[`${k}: replica ${i + 1} RSS (MiB)`] = mib(r);
    }
    if (replicas > 1) {
      // Failover: kill -9 the replica holding most agents; its agents reconnect through HAProxy.
      const counts = await Promise.all(
        servers.map(async (s) => ((await (await fetch(`${s.url}/readyz`)).json()) as { agentsConnected: number }).agentsConnected),
      );
      const victim = counts.indexOf(Math.max(...counts));
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      const id = (await db.query('select id from replicas where url = $1', [servers[victim].url])).rows[0]?.id as string;
      const k0 = performance.now();
      await stop(servers[victim].proc, 'SIGKILL');
      let releasedS = 0;
      while ((await connected()) < reached) {
        if (!releasedS && Number((await db.query(`select count(*) from edge_hosts where replica = $1 and connectivity = 'online'`, [id])).rows[0].count) === 0)
          releasedS = (performance.now() - k0) / 1000;
        if (performance.now() - k0 > 180_000) throw new Error(`only ${await connected()}/${reached} agents back after 180 s`);
        await sleep(250);
      }
      const backS = (performance.now() - k0) / 1000;
      while (!releasedS) {
        if (Number((await db.query(`select count(*) from edge_hosts where replica = $1 and connectivity = 'online'`, [id])).rows[0].count) === 0)
          releasedS = (performance.now() - k0) / 1000;
        else await sleep(250);
      }
      await db.end();
      out[`${k}: failover, agents of the killed replica`] = counts[victim];
      out[`${k}: failover, all agents connected again (s)`] = round(backS);
      out[`${k}: failover, no host left online through the dead replica (s)`] = round(releasedS);
    }
    return out;
  } finally {
    await stop(sim);
    await lb?.stop();
    for (const s of servers) await stop(s.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
