import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
const BIOME = join(ROOT, 'node_modules/.bin/biome');

/** Raw I/O a manager must not do: it belongs to the Device. */
const RAW_IO = `import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
export const read = () => readFile('/etc/hostname');
export const run = () => spawn('ls');
export const get = () => fetch('http://127.0.0.1/');
`;

/**
 * The repository's biome.json keeps managers and remote sessions on the Device: the same file is
 * linted at the paths it would have in the tree (a copy of the config in a temp dir, so nothing is
 * written into the sources).
 */
describe('lint rule: managers and remote sessions do no raw I/O', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-seam-lint-'));
    const config = JSON.parse(await readFile(join(ROOT, 'biome.json'), 'utf8'));
    delete config.$schema;
    delete config.vcs;
    await writeFile(join(dir, 'biome.json'), JSON.stringify(config));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const lint = async (path: string, source = RAW_IO): Promise<string> => {
    const file = join(dir, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, source);
    return new Promise((resolve) => {
      execFile(BIOME, ['lint', '--max-diagnostics=50', file], { cwd: dir }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
    });
  };

  it.each([
    'packages/agent/src/managers/os/probe.ts',
    'packages/agent/src/managers/addons/probe.ts',
    'packages/agent/src/managers/virt/probe.ts',
    'packages/agent/src/managers/maintenance/probe.ts',
    'packages/agent/src/managers/runner.ts',
    'packages/agent/src/troubleshoot/session-process.ts',
  ])('refuses node:fs, node:child_process and fetch in %s', async (path) => {
    const out = await lint(path);
    expect(out).toMatch(/node:fs\/promises[\s\S]*device\.files|device\.files[\s\S]*node:fs\/promises/);
    expect(out).toContain('noRestrictedImports');
    expect(out).toMatch(/device\.exec, device\.processes/);
    expect(out).toContain('noRestrictedGlobals');
  });

  it("lets the agent's own log and support bundle read files, but not start processes", async () => {
    const out = await lint('packages/agent/src/troubleshoot/log-tail.ts');
    expect(out).not.toMatch(/device\.files/);
    expect(out).toMatch(/device\.exec, device\.processes/);
  });

  it('leaves the device implementations and tests alone', async () => {
    expect(await lint('packages/agent/src/device/linux/probe.ts')).not.toContain('noRestricted');
    expect(await lint('packages/agent/src/managers/os/probe.test.ts')).not.toContain('noRestricted');
  });
});
