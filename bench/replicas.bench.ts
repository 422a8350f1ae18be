import { type ChildProcess, spawn } from 'node:child_process';
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

/**
 * Replicas side by side with a single server, in the same run, on PostgreSQL (BENCH_DATABASE_URL's
 * server, else an embedded PostgreSQL started for the run; each mode gets an empty database):
 * N simulated agents (BENCH_REPLICAS_AGENTS, default 1000; the simulator in its own process)
 * register and connect to one `edgeplane server`, then to three behind HAProxy (health checks on
 * /readyz). Reported: time to register and connect all (a registration storm through the front),
 * RSS of each server process, the heartbeat round trip of a probe agent through the front, and for
 * three replicas the failover after kill -9 of the replica holding most agents.
 */
export async function replicasBench(): Promise<BenchResult> {
  const n = Number(process.env.BENCH_REPLICAS_AGENTS ?? 1000);
  const pgServer = await postgres();
  try {
    const single = await runMode(n, 1, await pgServer.database('bench_single'));
    const three = await runMode(n, 3, await pgServer.database('bench_replicas'));
    return {
      name: 'replicas',
      description: `${n} simulated agents (simulator in its own process) on one server process, then on three replicas behind HAProxy, on PostgreSQL, in the same run; heartbeat every 10 s. RSS from /proc; the probe's round trip goes through the front (HAProxy for three).`,
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

async function runMode(n: number, replicas: number, databaseUrl: string): Promise<Record<string, number>> {
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
      const proc = spawn(process.execPath, ['--import', 'tsx', cli, ...args, '--offline-after', String(OFFLINE_AFTER)], {
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
    while ((await connected()) < n) {
      if (performance.now() - t0 > 300_000) throw new Error(`only ${await connected()}/${n} agents connected after 300 s`);
      await sleep(250);
    }
    const connectS = (performance.now() - t0) / 1000;
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
    const out: Record<string, number> = {
      [`${k}: register + connect all (s)`]: round(connectS),
      [`${k}: registrations/s through the front`]: Math.round(n / connectS),
      [`${k}: server RSS, largest process (MiB)`]: mib(Math.max(...rss)),
      [`${k}: server RSS, all processes (MiB)`]: mib(rss.reduce((a, b) => a + b, 0)),
      [`${k}: heartbeat round trip p50 (ms)`]: round(pct(rtts, 50), 2),
      [`${k}: heartbeat round trip p99 (ms)`]: round(pct(rtts, 99), 2),
    };
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
      while ((await connected()) < n) {
        if (!releasedS && Number((await db.query(`select count(*) from edge_hosts where replica = $1 and connectivity = 'online'`, [id])).rows[0].count) === 0)
          releasedS = (performance.now() - k0) / 1000;
        if (performance.now() - k0 > 180_000) throw new Error(`only ${await connected()}/${n} agents back after 180 s`);
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
