import { type ChildProcess, spawn } from 'node:child_process';
import type { SessionProcess } from './processes.js';

/** How to start one process on the machine running the agent (the device implementations decide argv, env and cwd). */
export interface HostProcessSpec {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Name used in "cannot run <name>" (the command the operator asked for, not a wrapper). */
  name?: string;
}

/** A process on a pseudo-terminal (node-pty), loaded on first use so an agent without it still runs. */
export async function spawnPtyProcess(spec: HostProcessSpec, cols: number, rows: number): Promise<SessionProcess> {
  const mod = (await import('node-pty')) as Partial<typeof import('node-pty')> & { default?: typeof import('node-pty') };
  const pty = (mod.spawn ? mod : mod.default) as typeof import('node-pty');
  const p = pty.spawn(spec.file, spec.args, { name: 'xterm-256color', cols, rows, cwd: spec.cwd, env: spec.env });
  let exited = false;
  return {
    onData: (cb) => p.onData((s) => cb('stdout', Buffer.from(s, 'utf8'))),
    onExit: (cb) =>
      p.onExit(({ exitCode, signal }) => {
        exited = true;
        cb(signal ? null : exitCode, signal ? `SIG${signalName(signal)}` : null);
      }),
    write: (data, done) => {
      if (!exited) p.write(data.toString('utf8'));
      done();
    },
    resize: (c, r) => !exited && p.resize(c, r),
    eof: () => !exited && p.write('\x04'),
    pause: () => p.pause(),
    resume: () => p.resume(),
    kill: () => {
      if (exited) return;
      try {
        p.kill('SIGHUP');
      } catch {
        /* already gone */
      }
      setTimeout(() => !exited && p.kill('SIGKILL'), 2000).unref();
    },
  };
}

function signalName(n: number): string {
  const names: Record<number, string> = { 1: 'HUP', 2: 'INT', 9: 'KILL', 15: 'TERM' };
  return names[n] ?? String(n);
}

/** A process with pipes for stdin, stdout and stderr; the exit code passes through (127 when it cannot start). */
export function spawnPipedProcess(spec: HostProcessSpec): SessionProcess {
  const child: ChildProcess = spawn(spec.file, spec.args, { env: spec.env, cwd: spec.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let exited = false;
  const exitCbs: ((code: number | null, signal: string | null) => void)[] = [];
  let spawnError: Error | undefined;
  child.on('error', (err) => {
    spawnError = err;
  });
  child.on('close', (code, signal) => {
    exited = true;
    // A command that could not start (ENOENT) exits 127, as a shell reports it.
    const c = spawnError ? 127 : code;
    for (const cb of exitCbs) cb(c, signal);
  });
  child.stdin?.on('error', () => {}); // EPIPE when the command ignores its input
  return {
    onData: (cb) => {
      child.stdout?.on('data', (d: Buffer) => cb('stdout', d));
      child.stderr?.on('data', (d: Buffer) => cb('stderr', d));
      child.once('error', (err) => cb('stderr', Buffer.from(`cannot run ${spec.name ?? spec.file}: ${err.message}\n`)));
    },
    onExit: (cb) => exitCbs.push(cb),
    write: (data, done) => {
      if (exited || !child.stdin?.writable) return done();
      child.stdin.write(data, () => done());
    },
    resize: () => {},
    eof: () => child.stdin?.end(),
    pause: () => {
      child.stdout?.pause();
      child.stderr?.pause();
    },
    resume: () => {
      child.stdout?.resume();
      child.stderr?.resume();
    },
    kill: () => {
      if (exited) return;
      child.kill('SIGTERM');
      setTimeout(() => !exited && child.kill('SIGKILL'), 2000).unref();
    },
  };
}
