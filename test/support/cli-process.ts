import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = 'packages/cli/src/bin.ts';

export interface CliProcess {
  proc: ChildProcess;
  output(): string;
  stdout(): string;
  /** Resolves when the combined output matches, rejects on exit or timeout. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

// A test that fails before its cleanup must not leave servers or simulators running after the run.
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Runs `edgeplane ARGS` as its own process, the way a user would. */
export function runCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  let out = '';
  let stdout = '';
  proc.stdout!.on('data', (d) => {
    out += d;
    stdout += d;
  });
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  return {
    proc,
    output: () => out,
    stdout: () => stdout,
    waitForOutput(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const started = Date.now();
        const tick = setInterval(() => {
          const m = out.match(re);
          if (m) {
            clearInterval(tick);
            resolve(m);
          } else if (proc.exitCode !== null || Date.now() - started > timeoutMs) {
            clearInterval(tick);
            reject(new Error(`no ${re} in output (exit ${proc.exitCode}):\n${out.slice(-3000)}`));
          }
        }, 50);
      });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Runs a CLI command to completion. */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; stdout: string }> {
  const p = runCli(args, env);
  const code = await new Promise<number | null>((res) => p.proc.on('exit', (c) => res(c)));
  return { code, out: p.output(), stdout: p.stdout() };
}
