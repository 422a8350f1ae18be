import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import freePort from '../support/free-port.js';
import { firstUnmatched, lineMatches, parseTryIt, plainLines } from '../support/try-it.js';

/**
 * docs/try-it.md, run as written, so the tour cannot rot.
 *
 * - Steps are the guide's ```sh try-it``` blocks, run in document order by ONE bash process started
 *   in the checkout root: variables, aliases, functions and background jobs carry over from step to
 *   step, as in the terminal of a reader who pastes them one after the other. Each step reads stdin
 *   from /dev/null; its stdout and stderr go to one file.
 * - A step fails when one of its commands fails, with `set -e` rules (a command in an `if`/`until`
 *   condition or before `&&`/`||` may fail; with pipefail, a pipeline fails when any part fails),
 *   or when it runs longer than STEP_TIMEOUT_MS.
 * - A ```text try-it-output``` block after a step lists what the step prints, one pattern per line,
 *   matched in order against its output lines (other lines may come in between), both trimmed:
 *   `/regex/` is searched in a line; any other text must equal a whole line, where runs of whitespace
 *   match any whitespace and `...` matches any text (test/support/try-it.ts). Colours and `\r`
 *   redraws are removed first.
 * - The guide starts the server, the registry and the simulator with `&` and stops them in its last
 *   step (`kill ...; wait`). Whatever happens, the test ends bash's whole process group afterwards.
 * - TOUR (a fresh temp dir), EDGEPLANE_PORT and REGISTRY_PORT (free loopback ports) are set before
 *   the first step, so nothing collides with other tests; the image builder keeps using the user's
 *   cache (~/.cache/edgeplane/image), so the kernel package is downloaded once per machine.
 */

const execFileP = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GUIDE = join(ROOT, 'docs/try-it.md');
const STEP_TIMEOUT_MS = 360_000;
const steps = parseTryIt(await readFile(GUIDE, 'utf8'));

describe('try-it output patterns', () => {
  it('match whole lines with flexible spacing, `...` wildcards and /regexes/, in order', () => {
    expect(lineMatches('NAME ... PHASE ... NODES ...', 'NAME     PHASE   PROFILE  NODES   CREATED')).toBe(true);
    expect(lineMatches('Linux', 'Linux x86_64')).toBe(false);
    expect(lineMatches('eprt_...', 'eprt_...')).toBe(true);
    expect(lineMatches('/^shop-1\\s+Running/', 'shop-1   Running   shop-k3s')).toBe(true);
    expect(lineMatches('/^shop-1\\s+1\\s/', '  shop-1   1   site-001')).toBe(true);
    expect(lineMatches('a.b', 'axb')).toBe(false);
    expect(firstUnmatched(['one', 'three'], 'one\ntwo\r\nthree\n')).toBeUndefined();
    expect(firstUnmatched(['three', 'one'], 'one\ntwo\nthree\n')).toBe('one');
    expect(plainLines('\x1b[32mok\x1b[0m\rdone')).toEqual(['ok', 'done']);
  });

  it('attach an output block to the step before it', () => {
    const steps = parseTryIt('# A\n```sh try-it\necho hi\n```\ntext\n```text try-it-output\nhi\n```\n```sh\nnot run\n```\n');
    expect(steps).toEqual([{ index: 1, section: 'A', line: 2, script: 'echo hi', expect: ['hi'] }]);
  });
});

describe('docs/try-it.md', () => {
  let dir: string;
  let bash: ChildProcess;
  let bashOutput = '';
  let dead: string | undefined;

  beforeAll(async () => {
    // The guide's readers build the command first (`npm run build`, a plain block the test does not
    // run); here the bundle is brought up to date when a source changed since (`npm test` did it already).
    await execFileP(process.execPath, [join(ROOT, 'scripts/build-dist.mjs')], { cwd: ROOT });
    dir = await mkdtemp(join(tmpdir(), 'ep-try-it-'));
    await mkdir(join(dir, 'steps'));
    const tour = join(dir, 'tour');
    await mkdir(tour);
    const env: Record<string, string | undefined> = {
      ...process.env,
      TOUR: tour,
      EDGEPLANE_PORT: String(await freePort()),
      REGISTRY_PORT: String(await freePort()),
      EDGEPLANE_CONFIG: join(tour, 'edgeplane-config.yaml'),
      NO_COLOR: '1',
    };
    for (const k of ['EDGEPLANE_TOKEN', 'EDGEPLANE_SERVER', 'EDGEPLANE_CONTEXT']) delete env[k];
    // Its own process group (detached), so afterAll ends it and every background job it started.
    bash = spawn('bash', ['--noprofile', '--norc'], { cwd: ROOT, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    bash.stdout!.on('data', (d) => (bashOutput += d));
    bash.stderr!.on('data', (d) => (bashOutput += d));
    bash.on('exit', (code, signal) => (dead ??= `bash exited (${code ?? signal})`));
    bash.stdin!.write('set -o pipefail; shopt -s expand_aliases\n');
  });

  afterAll(async () => {
    if (bash?.pid) {
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        try {
          process.kill(-bash.pid, signal);
        } catch {
          break; // the group is gone
        }
        if (signal === 'SIGTERM') await new Promise((r) => setTimeout(r, 3000));
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('has steps', () => {
    expect(steps.length).toBeGreaterThan(10);
  });

  for (const step of steps) {
    const title = `step ${step.index} (${step.section}, line ${step.line}): ${step.script.split('\n')[0]}`;
    it(
      title,
      async () => {
        expect(dead, `${dead}: ${bashOutput.slice(-2000)}`).toBeUndefined();
        const file = join(dir, 'steps', `${step.index}.sh`);
        const out = join(dir, 'steps', `${step.index}.out`);
        const rc = join(dir, 'steps', `${step.index}.rc`);
        // ERR trap: the first failing command ends the sourced step with its status (set -e rules, without ending the shell).
        await writeFile(file, `trap 'rc=$?; trap - ERR; return $rc' ERR\n${step.script}\ntrap - ERR\n`);
        bash.stdin!.write(`source '${file}' > '${out}' 2>&1 < /dev/null; echo $? > '${rc}.tmp'; mv '${rc}.tmp' '${rc}'\n`);
        const deadline = Date.now() + STEP_TIMEOUT_MS;
        while (!existsSync(rc) && !dead && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
        const output = existsSync(out) ? await readFile(out, 'utf8') : '';
        const tail = plainLines(output).slice(-80).join('\n');
        if (!existsSync(rc)) {
          // The shell is stuck in this step: end it (and everything it started) so the steps after fail at once.
          if (bash.pid) process.kill(-bash.pid, 'SIGKILL');
          dead ??= `step ${step.index} did not finish within ${STEP_TIMEOUT_MS / 1000} s`;
          expect.fail(`${dead}; its output so far:\n${tail}`);
        }
        const code = Number((await readFile(rc, 'utf8')).trim());
        expect(code, `step ${step.index} exited ${code}; output:\n${tail}`).toBe(0);
        const missing = firstUnmatched(step.expect, output);
        expect(missing, `step ${step.index} no longer prints a line matching ${JSON.stringify(missing)}; output:\n${tail}`).toBeUndefined();
      },
      STEP_TIMEOUT_MS + 10_000,
    );
  }
});
