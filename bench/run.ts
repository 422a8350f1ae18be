/**
 * Benchmark runner: `npm run bench` writes bench/report.json (machine-readable) and bench/report.md
 * (for people). Speed and memory targets live here, not in timed unit tests.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { apiList } from './api-list.bench.js';
import { cliStart } from './cli-start.bench.js';
import { connectedAgents } from './connected-agents.bench.js';
import { consoleHosts } from './console-hosts.bench.js';
import { consoleOverviewMap } from './console-overview-map.bench.js';
import { deltaUpdates } from './delta-updates.bench.js';
import { fleetConnect } from './fleet-connect.bench.js';
import { registrationStorm } from './registration-storm.bench.js';
import { replicasBench } from './replicas.bench.js';
import { rolloutBench } from './rollout.bench.js';

/** Every benchmark by name; `BENCH_ONLY=<name> npm run bench` runs one. */
const BENCHMARKS: Record<string, () => Promise<BenchResult>> = {
  'fleet-connect': fleetConnect,
  'console-hosts': consoleHosts,
  'console-overview-map': consoleOverviewMap,
  'connected-agents': connectedAgents,
  'registration-storm': registrationStorm,
  rollout: rolloutBench,
  'api-list': apiList,
  'cli-start': cliStart,
  'delta-updates': deltaUpdates,
  replicas: replicasBench,
};

export interface BenchResult {
  name: string;
  description: string;
  metrics: Record<string, number>;
}

export interface BenchReport {
  date: string;
  node: string;
  platform: string;
  cpu: string;
  cpus: number;
  memoryBytes: number;
  results: BenchResult[];
  note?: string;
}

function markdown(report: BenchReport): string {
  const lines = [
    '# Edgeplane benchmarks',
    '',
    `- date: ${report.date}`,
    `- node: ${report.node}`,
    `- platform: ${report.platform}`,
    `- cpu: ${report.cpu} (${report.cpus} cores)`,
    `- memory: ${(report.memoryBytes / 2 ** 30).toFixed(1)} GiB`,
    '',
  ];
  if (report.results.length === 0) {
    lines.push(report.note ?? 'No benchmarks yet.', '');
  }
  for (const r of report.results) {
    lines.push(`## ${r.name}`, '', r.description, '', '| metric | value |', '| --- | --- |');
    for (const [k, v] of Object.entries(r.metrics)) lines.push(`| ${k} | ${v} |`);
    lines.push('');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const results: BenchResult[] = [];
  const only = process.env.BENCH_ONLY;
  for (const [name, run] of Object.entries(BENCHMARKS)) {
    if (only && only !== name) continue;
    process.stdout.write(`running ${name}...\n`);
    results.push(await run());
  }
  const report: BenchReport = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryBytes: totalmem(),
    results,
  };
  const dir = fileURLToPath(new URL('.', import.meta.url));
  writeFileSync(`${dir}report.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${dir}report.md`, markdown(report));
  // One JSON + markdown pair per benchmark too, each with the machine facts, so results of separate runs (BENCH_ONLY) are kept side by side.
  mkdirSync(`${dir}results`, { recursive: true });
  for (const r of results) {
    const one = { ...report, results: [r] };
    writeFileSync(`${dir}results/${r.name}.json`, `${JSON.stringify(one, null, 2)}\n`);
    writeFileSync(`${dir}results/${r.name}.md`, markdown(one));
  }
  process.stdout.write(`wrote ${dir}report.json and ${dir}report.md (${results.length} benchmarks)\n`);
}

await main();
