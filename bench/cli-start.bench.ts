import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startServer } from '@edgeplane/server';
import pino from 'pino';
import { buildCli, CLI_DIST } from '../scripts/build-dist.mjs';
import { seedHosts } from '../test/support/seed-hosts.js';
import type { BenchResult } from './run.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r1 = (n: number) => Math.round(n * 10) / 10;

/**
 * Wall time of one process from spawn to exit, and its CPU time (user + system, from GNU time):
 * on a shared machine wall time includes waiting for a core, CPU time is the command's own cost.
 * Fails on a non-zero exit.
 */
async function timed(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; cpuMs: number; stdout: string }> {
  const t0 = performance.now();
  // Async: the server the CLI talks to runs in this process.
  const { stdout, stderr } = await run('/usr/bin/time', ['-f', 'cpu %U %S', file, ...args], { cwd: ROOT, env, maxBuffer: 64 * 2 ** 20 });
  const ms = performance.now() - t0;
  const [, user, sys] = /cpu (\S+) (\S+)\s*$/.exec(stderr) ?? [];
  return { ms, cpuMs: (Number(user) + Number(sys)) * 1000, stdout };
}

/** kubectl's own binary, if one is installed; the reference is reported as unavailable otherwise. */
async function kubectl(): Promise<string | undefined> {
  try {
    await run('kubectl', ['version', '--client']);
    return 'kubectl';
  } catch {
    return undefined;
  }
}

/**
 * Cold start of the built `edgeplane` command (the esbuild bundle `npm run build` writes to
 * packages/cli/dist, run with plain node): `--version`, and `get hosts` against a local server
 * with BENCH_CLI_HOSTS (default 1,000) hosts, each a new process, side by side with `kubectl
 * version --client` and `node -e 0` in the same rounds (interleaved, so machine load hits all
 * alike). Median of BENCH_CLI_RUNS (default 10) after one warm-up each. Targets: --version within
 * 3x kubectl, get hosts under 300 ms.
 */
export async function cliStart(): Promise<BenchResult> {
  const hosts = Number(process.env.BENCH_CLI_HOSTS ?? 1000);
  const runs = Number(process.env.BENCH_CLI_RUNS ?? 10);
  await buildCli();
  const bin = join(CLI_DIST, 'bin.js');
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bench-cli-'));
  const server = await startServer({ host: '127.0.0.1', port: 0, dataDir: dir, logger: pino({ level: 'silent' }) });
  try {
    await seedHosts({ dataDir: dir, dialect: 'sqlite', cleanup: async () => {} }, hosts);
    const env = {
      PATH: process.env.PATH,
      HOME: dir,
      EDGEPLANE_CONFIG: join(dir, 'config.yaml'),
      EDGEPLANE_SERVER: server.url,
      EDGEPLANE_TOKEN: server.adminToken,
    };
    const kube = await kubectl();
    const getHosts = `edgeplane get hosts (${hosts})`;
    const cases: Record<string, [string, string[]]> = {
      'node -e 0': [process.execPath, ['-e', '0']],
      'edgeplane --version': [process.execPath, [bin, '--version']],
      // The same command's start-up without the API round trips: what loading `get` costs.
      'edgeplane get --help': [process.execPath, [bin, 'get', '--help']],
      [getHosts]: [process.execPath, [bin, 'get', 'hosts']],
      ...(kube ? { 'kubectl version --client': [kube, ['version', '--client']] as [string, string[]] } : {}),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    for (let round = -1; round < runs; round++) {
      for (const [name, [file, args]] of Object.entries(cases)) {
        const { ms, cpuMs, stdout } = await timed(file, args, env);
        if (name === getHosts && stdout.trim().split('\n').length !== hosts + 1) throw new Error(`get hosts printed ${stdout.split('\n').length} lines`);
        if (round >= 0) {
          times[name].push(ms);
          cpu[name].push(cpuMs);
        }
      }
    }
    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, r1(median(v))]));
    const version = m['edgeplane --version'];
    const get = m[getHosts];
    const ref = m['kubectl version --client'];
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(m)) {
      metrics[`${k} median ms`] = v;
      metrics[`${k} median CPU ms`] = r1(median(cpu[k]));
    }
    if (ref) metrics['--version / kubectl version --client'] = Math.round((version / ref) * 100) / 100;
    metrics['--version within 3x kubectl (1 yes, 0 no)'] = ref ? Number(version <= 3 * ref) : Number.NaN;
    metrics['get hosts under 300 ms (1 yes, 0 no)'] = Number(get < 300);
    return {
      name: 'cli-start',
      description:
        `Cold start of the built CLI (packages/cli/dist, plain node), each run a new process: median wall time of ${runs} runs after one warm-up, ` +
        `interleaved with \`kubectl version --client\` (${kube ? 'installed' : 'NOT INSTALLED on this machine: no reference, the ratio is not reported'}) ` +
        `and \`node -e 0\` (Node's own start-up, the floor for any Node CLI); CPU ms is user + system time (GNU time, 10 ms resolution). \`get hosts\` lists ${hosts} hosts from a local server (SQLite). ` +
        'Targets: --version within 3x kubectl, get hosts under 300 ms.',
      metrics,
    };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
