import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// `npm run pack` output installed the way an operator installs it, then used with no way back to
// this checkout: another working directory, NODE_PATH unset, no npm_* variables from `npm test`
// and no PATH entry inside the checkout.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const exec = promisify(execFile);

function outsideEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|NODE_PATH$|NODE_OPTIONS$|EDGEPLANE_)/i.test(k)) env[k] = v;
  env.PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((p) => p && !p.startsWith(ROOT))
    .join(delimiter);
  return { ...env, HOME: home, NO_COLOR: '1' };
}

const servers = new Set<ChildProcess>();

/** Starts `edgeplane server` (argv: the command to run) on a free port; resolves with its URL once it listens. */
async function serve(argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; dataDir: string }): Promise<{ url: string; output: () => string }> {
  const proc = spawn(argv[0], [...argv.slice(1), 'server', '--port', '0', '--data-dir', opts.dataDir], {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.add(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const listening = /Console: (http:\/\/\S+?)\/\n/;
  await expect.poll(() => (proc.exitCode === null ? out : `exited ${proc.exitCode}: ${out}`), { timeout: 30_000 }).toMatch(listening);
  return { url: out.match(listening)![1], output: () => out };
}

/** The console's index.html and the script it loads are served, from a built console. */
async function expectConsole(url: string, output: string): Promise<void> {
  const page = await fetch(`${url}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  const html = await page.text();
  const script = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
  expect(script, html).toBeTruthy();
  expect((await fetch(`${url}${script}`)).status).toBe(200);
  expect(output).not.toMatch(/web console not built/);
}

const systemdAnalyze = (() => {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * `systemd-analyze verify` of a unit with its install paths moved to where this test installed the
 * files: its complaints (stderr; a directive it ignores still exits 0) and exit code.
 */
function verifyUnit(unit: string, dir: string, paths: [string, string][]): string {
  let text = readFileSync(unit, 'utf8');
  for (const [from, to] of paths) text = text.replaceAll(from, to);
  const file = join(dir, unit.split('/').pop()!);
  writeFileSync(file, text);
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
  return `${r.stderr}${r.status === 0 ? '' : `exit ${r.status}`}`;
}

describe('the packed edgeplane command', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'edgeplane-pkg-'));
  const prefix = join(tmp, 'prefix');
  const work = join(tmp, 'work');
  const env = outsideEnv(work);
  const edgeplane = join(prefix, 'bin/edgeplane');
  const pkg = join(prefix, 'lib/node_modules/edgeplane');
  const agentDir = join(tmp, 'agent');

  beforeAll(async () => {
    mkdirSync(work);
    // `npm run pack`, which `npm test` already ran (pretest): each step runs only when its output is stale.
    await exec(process.execPath, ['scripts/build-console.mjs'], { cwd: ROOT });
    await exec(process.execPath, ['scripts/build-dist.mjs', '--pack'], { cwd: ROOT });
  });

  afterAll(async () => {
    await Promise.all(
      [...servers].map(async (proc) => {
        if (proc.exitCode !== null) return;
        proc.kill('SIGTERM');
        await new Promise((res) => proc.once('exit', res));
      }),
    );
    rmSync(tmp, { recursive: true, force: true, maxRetries: 5 });
  });

  // The tests below use this install, in order.
  it('installs from the tarball alone: a copy, not a link into the checkout', async () => {
    // --offline: no dependency to fetch and nothing to compile.
    await exec('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', join(ROOT, `dist/edgeplane-${VERSION}.tgz`)], {
      cwd: work,
      env,
    });
    const real = realpathSync(edgeplane);
    expect(real).toBe(join(realpathSync(pkg), 'dist/bin.js'));
    expect(readFileSync(real, 'utf8')).not.toContain(ROOT);
  });

  it('prints its version', async () => {
    const { stdout } = await exec(edgeplane, ['--version'], { cwd: work, env });
    expect(stdout.trim()).toBe(VERSION);
  });

  it('runs the server with the console, and the CLI talks to it', async () => {
    const dataDir = join(tmp, 'data');
    const { url, output } = await serve([edgeplane], { cwd: work, env, dataDir });
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    await expectConsole(url, output());

    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const get = await exec(edgeplane, ['get', 'hosts', '--server', url, '--token', token], { cwd: work, env });
    expect(get.stderr).toMatch(/No edgehosts found/);
    // A wrong token is refused by the server it reached (the CLI is really talking to it).
    await expect(exec(edgeplane, ['get', 'hosts', '--server', url, '--token', 'ept_wrong'], { cwd: work, env })).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/Unauthenticated/),
    });
  });

  it('packs the agent as one file set that runs under plain node', async () => {
    mkdirSync(agentDir);
    await exec('tar', [
      '-xzf',
      join(ROOT, `dist/edgeplane-agent-${VERSION}-${process.platform}-${process.arch}.tar.gz`),
      '-C',
      agentDir,
      '--strip-components=1',
    ]);
    const { stdout } = await exec(process.execPath, [join(agentDir, 'dist/bin.js'), 'agent', '--help'], { cwd: work, env });
    expect(stdout).toMatch(/Usage: edgeplane agent/);
    expect(existsSync(join(agentDir, 'node_modules/node-pty/build/Release/pty.node'))).toBe(true);
    // An appliance's agent writes VM disks with this GRUB configuration: it is read beside the bundle.
    expect(readFileSync(join(agentDir, 'dist/boot/grub.cfg.template'), 'utf8')).toBe(readFileSync(join(ROOT, 'packages/agent/boot/grub.cfg.template'), 'utf8'));
  });

  it.skipIf(!systemdAnalyze)('ships systemd units that systemd-analyze accepts', () => {
    const units = join(tmp, 'units');
    mkdirSync(units);
    expect(verifyUnit(join(pkg, 'deploy/systemd/edgeplane-server.service'), units, [['/opt/edgeplane', prefix]])).toBe('');
    expect(
      verifyUnit(join(agentDir, 'deploy/systemd/edgeplane-agent.service'), units, [
        ['/usr/bin/node', process.execPath],
        ['/opt/edgeplane-agent', agentDir],
      ]),
    ).toBe('');
  });

  it('runs from the checkout after the build: node_modules/.bin/edgeplane, npx edgeplane, and npm start serves the console', async () => {
    const version = await exec(process.execPath, ['node_modules/.bin/edgeplane', '--version'], { cwd: ROOT, env });
    expect(version.stdout.trim()).toBe(VERSION);
    const help = await exec('npx', ['edgeplane', '--help'], { cwd: ROOT, env });
    expect(help.stdout).toMatch(/^Usage: edgeplane/m);
    // What `npm start` runs: the bundle in packages/cli/dist, finding the console in packages/console/dist.
    const { url, output } = await serve([process.execPath, join(ROOT, 'packages/cli/dist/bin.js')], { cwd: work, env, dataDir: join(tmp, 'start-data') });
    await expectConsole(url, output());
  });
});
