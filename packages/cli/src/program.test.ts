import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultIo } from './io.js';
import { COMMAND_MODULES, modulesFor } from './program.js';
import { type FakeApi, startFakeApi, tempConfigEnv } from './test-support.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

describe('command modules', () => {
  it.each(COMMAND_MODULES.map((m) => [m.names.join(', '), m] as const))('%s: the table names every command the module registers', async (_n, m) => {
    const program = new Command('edgeplane');
    for (const register of await m.load()) register(program, { io: defaultIo(), exitCode: 0 });
    expect(program.commands.map((c) => c.name())).toEqual([...m.names]);
  });

  it('loads only the invoked command, none for --version, all for help and unknown words', () => {
    const names = (args: string[]) => modulesFor(args).map((m) => m.names[0]);
    expect(names(['--version'])).toEqual([]);
    expect(names(['-v'])).toEqual([]);
    expect(names(['get', 'hosts', '-o', 'wide'])).toEqual(['get']);
    expect(names(['reject', 'host', 'h1'])).toEqual(['approve']);
    expect(names(['help', 'describe'])).toEqual(['describe']);
    expect(names(['--help'])).toHaveLength(COMMAND_MODULES.length);
    expect(names([])).toHaveLength(COMMAND_MODULES.length);
    expect(names(['gett', 'hosts'])).toHaveLength(COMMAND_MODULES.length);
  });
});

/** Runs the CLI from source in its own process and returns what it printed and every module it resolved. */
async function modulesLoadedBy(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; modules: string[] }> {
  const log = join(env.HOME!, `modules-${args.join('-').replace(/\W/g, '_')}.log`);
  writeFileSync(log, '');
  const proc = spawn(process.execPath, ['--import', 'tsx', '--import', './test/support/module-log.mjs', 'packages/cli/src/bin.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, EDGEPLANE_MODULE_LOG: log, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c) => (stdout += c));
  proc.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  if (code !== 0) throw new Error(`edgeplane ${args.join(' ')} exited ${code}: ${stderr}`);
  const modules = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((u) => (u.startsWith('file://') ? fileURLToPath(u).slice(ROOT.length) : u));
  return { code, stdout, modules };
}

/** Code a client command must never load: the server, the agent (its TLS trust helper aside), the simulator, the image builder. */
const HEAVY =
  /^packages\/(server|sim|image)\/|^packages\/agent\/(?!src\/tls-trust\.ts$)|node_modules\/(esbuild|fastify|kysely|better-sqlite3|pg|node-pty|@kubernetes|undici)\//;

describe('start-up loads only what the command needs', () => {
  let api: FakeApi;
  let env: Record<string, string>;
  beforeAll(async () => {
    api = await startFakeApi();
    api.put('edgehosts', { metadata: { name: 'nuc-01' }, status: { state: 'ready' } });
    env = { ...tempConfigEnv(), EDGEPLANE_SERVER: api.url, EDGEPLANE_TOKEN: api.token };
  });
  afterAll(() => api?.close());

  it('--version loads no command module, no protocol schemas and no API client', async () => {
    const r = await modulesLoadedBy(['--version'], env);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    const local = r.modules.filter((m) => m.startsWith('packages/'));
    expect(
      local.every((m) => /^packages\/cli\/src\/(bin|main|io|program|commands\/help-text)\.ts$/.test(m)),
      local.join(', '),
    ).toBe(true);
    expect(r.modules.filter((m) => /node_modules\/(zod|yaml|cli-table3|undici|ws|pino)\//.test(m))).toEqual([]);
  });

  it.each([
    ['get', ['get', 'hosts'], /nuc-01/],
    ['describe', ['describe', 'host', 'nuc-01'], /nuc-01/],
    ['apply', ['apply', '-f', 'MANIFEST'], /projects\/p1 created/],
    ['--help', ['--help'], /Usage: edgeplane/],
    ['get --help', ['get', '--help'], /Usage: edgeplane get/],
  ])('%s loads no server, agent, simulator or image builder code', async (_name, args, output) => {
    const manifest = join(env.HOME!, 'p1.yaml');
    writeFileSync(manifest, 'apiVersion: edgeplane.io/v1\nkind: Project\nmetadata:\n  name: p1\nspec: {}\n');
    const r = await modulesLoadedBy(
      args.map((a) => (a === 'MANIFEST' ? manifest : a)),
      env,
    );
    expect(r.stdout).toMatch(output);
    // The command's own module did load (the log works), and nothing heavy did.
    expect(r.modules.some((m) => m.startsWith('packages/cli/src/commands/'))).toBe(true);
    expect(r.modules.filter((m) => HEAVY.test(m))).toEqual([]);
  });

  it.each([
    ['get', ['get', 'hosts'], /nuc-01/],
    ['get --help', ['get', '--help'], /Usage: edgeplane get/],
  ])('%s builds no protocol schema (the kind table is plain data)', async (_name, args, output) => {
    const r = await modulesLoadedBy(args, env);
    expect(r.stdout).toMatch(output);
    expect(r.modules.filter((m) => /node_modules\/zod\/|packages\/protocol\/src\/(index|kinds)\.ts$/.test(m))).toEqual([]);
  });
});
