import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
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

describe('the packed edgeplane command', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'edgeplane-pkg-'));
  const prefix = join(tmp, 'prefix');
  const work = join(tmp, 'work');
  const env = outsideEnv(work);
  const edgeplane = join(prefix, 'bin/edgeplane');
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    mkdirSync(work);
    // `npm run pack`, which `npm test` already ran (pretest): each step runs only when its output is stale.
    await exec(process.execPath, ['scripts/build-console.mjs'], { cwd: ROOT });
    await exec(process.execPath, ['scripts/build-dist.mjs', '--pack'], { cwd: ROOT });
  });

  afterAll(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((res) => server!.once('exit', res));
    }
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
    expect(real).toBe(join(realpathSync(prefix), 'lib/node_modules/edgeplane/dist/bin.js'));
    expect(readFileSync(real, 'utf8')).not.toContain(ROOT);
  });

  it('prints its version', async () => {
    const { stdout } = await exec(edgeplane, ['--version'], { cwd: work, env });
    expect(stdout.trim()).toBe(VERSION);
  });

  it('runs the server with the console, and the CLI talks to it', async () => {
    const dataDir = join(tmp, 'data');
    server = spawn(edgeplane, ['server', '--port', '0', '--data-dir', dataDir], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    server.stdout!.on('data', (d) => (out += d));
    server.stderr!.on('data', (d) => (out += d));
    await expect
      .poll(() => (server!.exitCode === null ? out : `exited ${server!.exitCode}: ${out}`), { timeout: 30_000 })
      .toMatch(/Console: (http:\/\/\S+?)\/\n/);
    const url = out.match(/Console: (http:\/\/\S+?)\/\n/)![1];

    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    const script = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
    expect(script, html).toBeTruthy();
    expect((await fetch(`${url}${script}`)).status).toBe(200);
    expect(out).not.toMatch(/web console not built/);

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
    const dir = join(tmp, 'agent');
    mkdirSync(dir);
    await exec('tar', ['-xzf', join(ROOT, `dist/edgeplane-agent-${VERSION}-${process.platform}-${process.arch}.tar.gz`), '-C', dir, '--strip-components=1']);
    const { stdout } = await exec(process.execPath, [join(dir, 'dist/bin.js'), 'agent', '--help'], { cwd: work, env });
    expect(stdout).toMatch(/Usage: edgeplane agent/);
    expect(existsSync(join(dir, 'node_modules/node-pty/build/Release/pty.node'))).toBe(true);
  });

  it('runs from the checkout after the build: node_modules/.bin/edgeplane and npx edgeplane', async () => {
    const version = await exec(process.execPath, ['node_modules/.bin/edgeplane', '--version'], { cwd: ROOT, env });
    expect(version.stdout.trim()).toBe(VERSION);
    const help = await exec('npx', ['edgeplane', '--help'], { cwd: ROOT, env });
    expect(help.stdout).toMatch(/^Usage: edgeplane/m);
  });
});
