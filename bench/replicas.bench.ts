import { type ChildProcess, execFile, execFileSync, fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { hostNameForDevice } from '../packages/server/src/edgehost/edgehost.service.js';
import { startEmbeddedPostgres } from '../test/support/embedded-postgres.js';
import freePort from '../test/support/free-port.js';
import { type Haproxy, startHaproxy } from '../test/support/haproxy.js';
import { insertHosts } from '../test/support/seed-hosts.js';
import { type LeanIdentity, leanIdentities, type StartCommand, type WorkerMessage } from './lean-agents.js';
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
const leanAgents = fileURLToPath(new URL('./lean-agents.ts', import.meta.url));

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
): Promise<{ elapsedMs: number; refused: number; failed: number; registered: number; lost: number; failures: Record<string, number> }> {
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
 *  2. N agents (BENCH_REPLICAS_AGENTS, default 5000; lean bench agents, bench/lean-agents.ts, in
 *     BENCH_LEAN_WORKERS processes, default 2, at most BENCH_LEAN_WAVE connects in flight each) connect
 *     through the front: time, RSS and CPU of each server process, the bench client's CPU and RSS,
 *     and the heartbeat round trips of the whole fleet over BENCH_REPLICAS_RTT_WINDOW_S (default 30);
 *  3. three replicas only: failover after kill -9 of the replica holding most agents.
 * BENCH_CPU_PROF=<dir> writes a V8 CPU profile of every server process there (node --cpu-prof).
 */
export async function replicasBench(): Promise<BenchResult> {
  raiseOpenFileLimit(262_144);
  // Identities first, before any server or balancer runs (twice a run stalled making them later, blocked in the main thread).
  leanIdentities(Number(process.env.BENCH_REPLICAS_AGENTS ?? 5000));
  const n = Number(process.env.BENCH_REPLICAS_AGENTS ?? 5000);
  const stormN = Number(process.env.BENCH_REPLICAS_STORM ?? 2000);
  const pgServer = await postgres();
  try {
    const single = await runMode(n, stormN, 1, await pgServer.database('bench_single'));
    const three = await runMode(n, stormN, 3, await pgServer.database('bench_replicas'));
    return {
      name: 'replicas',
      description: `One server process, then three replicas behind HAProxy, on PostgreSQL, in the same run: a registration storm of ${stormN} devices through the front, then ${n} agents (lean bench agents speaking the agent protocol, in their own processes; hosts written to the store beforehand) connected through it, heartbeat every ${OFFLINE_AFTER / 3} s, then (three replicas) kill -9 of the replica holding most agents. RSS and CPU from /proc; heartbeat round trips (heartbeat frame + WebSocket ping, as the agent sends them) of every agent through the front (HAProxy for three).`,
      metrics: { ...single, ...three },
    };
  } finally {
    await pgServer.stop();
  }
}

/**
 * Raises this process's open-file limit (soft and hard) so the servers, HAProxy and the bench agents
 * started from it inherit room for tens of thousands of sockets. Needs root (CAP_SYS_RESOURCE) to
 * raise the hard limit; without it the run goes on with the limit it has (and says so).
 */
function raiseOpenFileLimit(n: number): void {
  if (openFileLimit() >= n) return;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${n}:${n}`], { stdio: 'pipe' });
  } catch {
    process.stderr.write(`replicas bench: open-file limit stays at ${openFileLimit()} (raising it needs CAP_SYS_RESOURCE)\n`);
  }
}

/** The hard open-file limit of this process (and so of the processes it starts). */
function openFileLimit(): number {
  return Number(/Max open files\s+\d+\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
}

/**
 * Writes the hosts of `ids` to the store in bulk, the rows registration writes for devices registered
 * with an auto-approving token (test/support/seed-hosts.ts hostRow), and returns what the agents need.
 */
async function seedHosts(databaseUrl: string, ids: LeanIdentity[]): Promise<StartCommand['agents']> {
  const agents = ids.map((id) => ({ ...id, hostName: hostNameForDevice(id.uid) }));
  await insertHosts(
    { dataDir: '', databaseUrl },
    agents.map((a) => ({ name: a.hostName, device: { uid: a.uid, x: a.x }, agentVersion: 'bench-lean' })),
  );
  return agents;
}

interface LeanFleet {
  pids: number[];
  /** Sums of the workers' last progress reports. */
  progress(): { welcomed: number; open: number; failedAttempts: number; reconnects: number; failures: Record<string, number> };
  /** Round trips measured since the last call (all workers). */
  rtt(): Promise<{ samples: number[]; missed: number }>;
  /** Throws if a worker process died. */
  check(): void;
  stop(): Promise<void>;
}

/**
 * The lean bench agents in `workers` processes, each with its share of the agents and two loopback
 * source addresses of its own (127.0.0.2 and up: the ephemeral ports, ~28,000 per source address
 * and destination, would not reach 30,000 connections to one address from one).
 */
function startLeanAgents(fronts: string[], agents: StartCommand['agents'], workers: number, wave: number): LeanFleet {
  const procs: ChildProcess[] = [];
  const last: Extract<WorkerMessage, { type: 'progress' }>[] = [];
  let stopping = false;
  let exited = '';
  for (let w = 0; w < workers; w++) {
    const proc = fork(leanAgents, [], {
      execArgv: ['--import', 'tsx'],
      cwd: root,
      env: { ...process.env, LEAN_AGENTS_WORKER: '1' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    last.push({ type: 'progress', welcomed: 0, open: 0, failedAttempts: 0, reconnects: 0, failures: {} });
    proc.on('exit', (code, signal) => {
      if (!stopping) exited = `a bench agent process exited (${code ?? signal}) during the run`;
    });
    proc.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') last[w] = m;
    });
    proc.send({
      cmd: 'start',
      servers: fronts,
      agents: agents.filter((_, i) => i % workers === w),
      wave,
      localAddresses: [`127.0.0.${2 + 2 * w}`, `127.0.0.${3 + 2 * w}`],
    } satisfies StartCommand);
    procs.push(proc);
  }
  return {
    pids: procs.map((p) => p.pid!),
    progress() {
      const sum = { welcomed: 0, open: 0, failedAttempts: 0, reconnects: 0, failures: {} as Record<string, number> };
      for (const p of last) {
        sum.welcomed += p.welcomed;
        sum.open += p.open;
        sum.failedAttempts += p.failedAttempts;
        sum.reconnects += p.reconnects;
        for (const [r, c] of Object.entries(p.failures)) sum.failures[r] = (sum.failures[r] ?? 0) + c;
      }
      return sum;
    },
    async rtt() {
      const parts = await Promise.all(
        procs.map(
          (p) =>
            new Promise<{ samples: number[]; missed: number }>((resolve) => {
              const on = (m: WorkerMessage) => {
                if (m.type !== 'rtt') return;
                p.off('message', on);
                resolve(m);
              };
              p.on('message', on);
              p.send({ cmd: 'rtt' });
            }),
        ),
      );
      return { samples: parts.flatMap((x) => x.samples), missed: parts.reduce((a, x) => a + x.missed, 0) };
    },
    check() {
      if (exited) throw new Error(exited);
    },
    async stop() {
      stopping = true;
      for (const p of procs) if (p.connected) p.send({ cmd: 'stop' });
      for (const p of procs) await stop(p, 'SIGTERM');
    },
  };
}

/**
 * A server's /readyz answer. Each try is bounded (a run once hung on a keep-alive socket the loaded
 * server had closed) and retried a few times before the run fails.
 */
async function readyz(url: string): Promise<{ agentsConnected?: number; agentChannelLimit?: number | null }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) })).json();
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(1000);
    }
  }
}

/** Health-check transitions to DOWN in an HAProxy's output so far. */
const downs = (lb: Haproxy) => (lb.output().match(/ is DOWN/g) ?? []).length;

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
  const lbs: Haproxy[] = [];
  let fleet: LeanFleet | undefined;
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
    // HAProxy takes two descriptors per proxied connection and refuses a maxconn beyond its open-file
    // limit: past about 9,000 agents per HAProxy the fleet goes through several, each in front of all
    // replicas (as several balancer instances behind one DNS name would be).
    const perLb = Math.floor((openFileLimit() - 1000) / 2);
    if (replicas > 1)
      for (let i = 0; i < Math.ceil((n + 500) / perLb); i++)
        lbs.push(
          await startHaproxy(
            servers.map((s, i) => ({ name: `r${i}`, url: s.url })),
            // Checks every 2 s as in docs/scale.md's configuration (fall 1 here, as in the tests).
            { checkIntervalMs: 2000, maxConn: perLb },
          ),
        );
    const fronts = lbs.length > 0 ? lbs.map((lb) => lb.url) : [servers[0].url];
    const front = fronts[0];
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
      for (const s of live()) sum += (await readyz(s.url)).agentsConnected ?? 0;
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
        ...Object.fromEntries(Object.entries(r.failures ?? {}).map(([reason, c]) => [`${k}: storm, failed attempts: ${reason}`, c])),
        // HAProxy takes a replica out when its /readyz health check fails (fall 1): how often that happened during the storm.
        ...(lbs.length > 0 ? { [`${k}: storm, replicas marked DOWN by HAProxy`]: lbs.reduce((sum, lb) => sum + downs(lb), 0) } : {}),
      });
    }
    // BENCH_REPLICAS_AGENTS=0: the storm alone (e.g. to profile registration with BENCH_CPU_PROF).
    if (n === 0) return out;
    // The fleet: lean bench agents (bench/lean-agents.ts) with cached identities whose hosts are written to the store in bulk.
    // One process holds agents up to its descriptor budget (agentChannelLimit): the single server is offered at most that many.
    const limit = (await readyz(servers[0].url)).agentChannelLimit ?? n;
    if (replicas === 1 && limit < n) n = limit;
    const ids = leanIdentities(n);
    const agents = await seedHosts(databaseUrl, ids);
    const t0 = performance.now();
    const cpu0 = servers.reduce((sum, s) => sum + cpuOf(s.proc.pid!), 0);
    fleet = startLeanAgents(fronts, agents, Number(process.env.BENCH_LEAN_WORKERS ?? 2), Number(process.env.BENCH_LEAN_WAVE ?? 64));
    const connectLimitS = Number(process.env.BENCH_REPLICAS_CONNECT_LIMIT_S ?? 300);
    // Bounded: past the limit the count reached is the result (and the rest of the run uses it).
    let reached = await connected();
    while (reached < n && performance.now() - t0 < connectLimitS * 1000) {
      await sleep(500);
      fleet.check();
      reached = await connected();
    }
    const connectS = (performance.now() - t0) / 1000;
    const failedWhileConnecting = fleet.progress().failures;
    const clientCpuS = fleet.pids.reduce((sum, pid) => sum + cpuOf(pid), 0);
    const serverCpuS = servers.reduce((sum, s) => sum + cpuOf(s.proc.pid!), 0) - cpu0;
    // Heartbeat round trips of the whole fleet (every agent beats once per interval) over a window at steady state.
    const windowS = Number(process.env.BENCH_REPLICAS_RTT_WINDOW_S ?? 30);
    await fleet.rtt();
    const c0 = servers.map((s) => cpuOf(s.proc.pid!));
    const cc0 = fleet.pids.reduce((sum, pid) => sum + cpuOf(pid), 0);
    await sleep(windowS * 1000);
    const { samples: rtts, missed } = await fleet.rtt();
    const steadyCpu = servers.map((s, i) => (cpuOf(s.proc.pid!) - c0[i]) / windowS);
    const steadyClientCpu = (fleet.pids.reduce((sum, pid) => sum + cpuOf(pid), 0) - cc0) / windowS;
    const rss = servers.map((s) => rssOf(s.proc.pid!));
    const perReplica = await Promise.all(servers.map(async (s) => (await readyz(s.url)).agentsConnected ?? 0));
    const p = fleet.progress();
    Object.assign(out, {
      [`${k}: agents offered`]: n,
      [`${k}: agents connected`]: reached,
      [`${k}: load balancers (HAProxy) in front`]: lbs.length,
      [`${k}: open-file limit per process`]: openFileLimit(),
      [`${k}: connect, all agents (s)`]: round(connectS),
      [`${k}: agents connected per second`]: Math.round(reached / connectS),
      [`${k}: servers' CPU while connecting (s)`]: round(serverCpuS),
      [`${k}: servers' CPU per agent connected (ms)`]: round((serverCpuS / Math.max(1, reached)) * 1000, 2),
      [`${k}: bench client CPU while connecting (s)`]: round(clientCpuS),
      [`${k}: bench client RSS (MiB)`]: mib(fleet.pids.reduce((sum, pid) => sum + rssOf(pid), 0)),
      [`${k}: connect attempts refused or failed`]: p.failedAttempts,
      [`${k}: server RSS, largest process (MiB)`]: mib(Math.max(...rss)),
      [`${k}: server RSS, all processes (MiB)`]: mib(rss.reduce((a, b) => a + b, 0)),
      [`${k}: server RSS per agent (KiB)`]: round(rss.reduce((a, b) => a + b, 0) / 1024 / Math.max(1, reached)),
      [`${k}: servers' CPU at steady state (% of one core, all processes)`]: round(steadyCpu.reduce((a, b) => a + b, 0) * 100),
      [`${k}: bench client CPU at steady state (% of one core)`]: round(steadyClientCpu * 100),
      [`${k}: heartbeats measured (${windowS} s window)`]: rtts.length,
      [`${k}: heartbeats unanswered by the next beat`]: missed,
      [`${k}: heartbeat round trip p50 (ms)`]: round(pct(rtts, 50), 2),
      [`${k}: heartbeat round trip p99 (ms)`]: round(pct(rtts, 99), 2),
      [`${k}: heartbeat round trip max (ms)`]: round(Math.max(...rtts), 2),
    });
    if (lbs.length > 0) out[`${k}: replicas marked DOWN by HAProxy (storm and connect)`] = lbs.reduce((sum, lb) => sum + downs(lb), 0);
    for (const [reason, count] of Object.entries(failedWhileConnecting)) out[`${k}: connect attempts failed while connecting: ${reason}`] = count;
    for (const [i, r] of rss.entries()) {
      if (replicas === 1) break;
      out[`${k}: replica ${i + 1} agents`] = perReplica[i];
      out[`${k}: replica ${i + 1} RSS (MiB)`] = mib(r);
    }
    if (replicas > 1) {
      // Failover: kill -9 the replica holding most agents; its agents reconnect through HAProxy.
      const counts = await Promise.all(servers.map(async (s) => (await readyz(s.url)).agentsConnected ?? 0));
      const victim = counts.indexOf(Math.max(...counts));
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      const id = (await db.query('select id from replicas where url = $1', [servers[victim].url])).rows[0]?.id as string;
      const k0 = performance.now();
      await stop(servers[victim].proc, 'SIGKILL');
      let releasedS = 0;
      // Bounded like the connect: past the limit, how many were back is the result.
      const failoverLimitS = Number(process.env.BENCH_REPLICAS_FAILOVER_LIMIT_S ?? 240);
      let back = await connected();
      while (back < reached && performance.now() - k0 < failoverLimitS * 1000) {
        if (!releasedS && Number((await db.query(`select count(*) from edge_hosts where replica = $1 and connectivity = 'online'`, [id])).rows[0].count) === 0)
          releasedS = (performance.now() - k0) / 1000;
        await sleep(250);
        back = await connected();
      }
      const backS = (performance.now() - k0) / 1000;
      while (!releasedS) {
        if (Number((await db.query(`select count(*) from edge_hosts where replica = $1 and connectivity = 'online'`, [id])).rows[0].count) === 0)
          releasedS = (performance.now() - k0) / 1000;
        else await sleep(250);
      }
      await db.end();
      out[`${k}: failover, agents of the killed replica`] = counts[victim];
      out[`${k}: failover, agents connected again (of ${reached})`] = back;
      out[`${k}: failover, all agents connected again (s)`] = round(backS);
      out[`${k}: failover, no host left online through the dead replica (s)`] = round(releasedS);
    }
    return out;
  } finally {
    await fleet?.stop();
    for (const lb of lbs) await lb.stop();
    for (const s of servers) await stop(s.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
