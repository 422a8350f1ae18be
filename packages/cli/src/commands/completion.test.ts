import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KINDS } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { runCli, tempConfigEnv } from '../test-support.js';

const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
const has = (shell: string) => spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
const lines = (s: string) => s.split('\n').filter(Boolean);
// Not execFileSync: the test server answering the script's calls runs in this process.
const run = promisify(execFile);

async function complete(words: string[], env: Record<string, string | undefined> = tempConfigEnv()): Promise<string[]> {
  const r = await runCli(['__complete', ...words], { env });
  expect(r.code).toBe(0);
  expect(r.stderr).toBe('');
  return lines(r.stdout);
}

describe('edgeplane completion', () => {
  it.each(['bash', 'zsh', 'fish'])('prints a %s script the shell parses', async (shell) => {
    const r = await runCli(['completion', shell]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('edgeplane __complete');
    if (!has(shell)) return; // the syntax check needs the shell; bash is always there
    const dir = mkdtempSync(join(tmpdir(), 'edgeplane-completion-'));
    try {
      writeFileSync(join(dir, 'script'), r.stdout);
      const check = spawnSync(shell, shell === 'fish' ? ['--no-execute', join(dir, 'script')] : ['-n', join(dir, 'script')], { encoding: 'utf8' });
      expect(check.stderr).toBe('');
      expect(check.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a shell it has no script for', async () => {
    const r = await runCli(['completion', 'tcsh']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Allowed choices are bash, zsh, fish');
  });
});

describe('edgeplane __complete', () => {
  it('completes commands, subcommands, options and option values', async () => {
    expect(await complete(['g'])).toEqual(['get']);
    const all = await complete(['']);
    expect(all).toEqual(expect.arrayContaining(['server', 'get', 'describe', 'apply', 'version', 'completion', 'approve', 'vm']));
    expect(all).not.toContain('__complete');
    expect(await complete(['create', ''])).toEqual(['token']);
    expect(await complete(['config', 'u'])).toEqual(['use-context']);
    expect(await complete(['get', '--o'])).toEqual(['--output']);
    expect(await complete(['get', 'hosts', '-o', 'y'])).toEqual(['yaml']);
    expect(await complete(['completion', ''])).toEqual(['bash', 'zsh', 'fish']);
  });

  it('completes kinds by plural, singular and short name', async () => {
    expect(await complete(['get', 'ho'])).toEqual(['host', 'hosts']);
    const kinds = await complete(['describe', '']);
    for (const k of KINDS) expect(kinds).toEqual(expect.arrayContaining([k.plural, k.singular, ...k.shortNames]));
    expect(await complete(['approve', 'tok'])).toEqual(['token', 'tokens']);
  });

  it('offers no names, quickly and silently, when the server cannot be reached or none is configured', async () => {
    const started = Date.now();
    expect(await complete(['get', 'hosts', ''], { ...tempConfigEnv(), EDGEPLANE_SERVER: 'http://127.0.0.1:9', EDGEPLANE_TOKEN: 't' })).toEqual([]);
    expect(await complete(['describe', 'host', ''])).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  describe('resource names from the API', () => {
    let t: TestServer;
    let env: Record<string, string>;
    const hosts: string[] = [];
    beforeAll(async () => {
      t = await testServer('sqlite');
      for (const uid of ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222']) {
        hosts.push((await t.api('POST', '/api/v1/edgehosts', { metadata: {}, spec: { deviceUid: uid } })).body.metadata.name);
      }
      await t.api('POST', '/api/v1/projects', { metadata: { name: 'shop-east' }, spec: {} });
      await t.api('POST', '/api/v1/projects', { metadata: { name: 'lab' }, spec: {} });
      env = { ...tempConfigEnv(), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    });
    afterAll(async () => t?.close());

    it('completes the names of the kind typed before, for every command that takes one', async () => {
      expect((await complete(['describe', 'host', ''], env)).sort()).toEqual([...hosts].sort());
      expect(await complete(['get', 'projects', 'sh'], env)).toEqual(['shop-east']);
      expect(await complete(['delete', 'proj', 'lab', 'sh'], env)).toEqual(['shop-east']);
      expect((await complete(['shell', ''], env)).sort()).toEqual([...hosts].sort());
      // --server given on the line wins over the environment.
      expect(await complete(['get', 'projects', '--server', 'http://127.0.0.1:9', 'sh'], env)).toEqual([]);
    });

    it('works from bash and fish through the printed scripts', async () => {
      const bin = mkdtempSync(join(tmpdir(), 'edgeplane-bin-'));
      try {
        // `edgeplane` on PATH, as after an install: the script calls it back.
        writeFileSync(join(bin, 'edgeplane'), `#!/bin/sh\nexec "${process.execPath}" --import tsx "${ROOT}packages/cli/src/bin.ts" "$@"\n`);
        chmodSync(join(bin, 'edgeplane'), 0o755);
        const shellEnv = { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}` };
        const { stdout: bash } = await run(
          'bash',
          [
            '-c',
            'source <(edgeplane completion bash); COMP_WORDS=(edgeplane get projects sh); COMP_CWORD=3; _edgeplane_complete; printf "%s\\n" "${COMPREPLY[@]}"',
          ],
          { cwd: ROOT, env: shellEnv, encoding: 'utf8' },
        );
        expect(lines(bash)).toEqual(['shop-east']);
        if (has('fish')) {
          const { stdout: fish } = await run('fish', ['-c', 'edgeplane completion fish | source; complete -C "edgeplane get projects sh"'], {
            cwd: ROOT,
            env: shellEnv,
            encoding: 'utf8',
          });
          expect(lines(fish)).toEqual(['shop-east']);
        }
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    });
  });
});
