import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';

/** A running session on the device: a PTY shell or a child process, seen as byte streams. */
export interface SessionProcess {
  onData(cb: (stream: 'stdout' | 'stderr', data: Buffer) => void): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  write(data: Buffer, done: () => void): void;
  resize(cols: number, rows: number): void;
  /** Ends input (stdin EOF); a PTY gets Ctrl-D. */
  eof(): void;
  pause(): void;
  resume(): void;
  kill(): void;
}

/** Who sessions run as, and how: `runuser` when the agent is root and a user is configured. */
export interface RunAs {
  user: string;
  /** Prefix that switches user, e.g. ['runuser', '-u', 'edge', '--']; empty to run as the agent itself. */
  prefix: string[];
}

/** Decides the user sessions run as; returns a refusal message when the agent cannot become that user. */
export function resolveRunAs(configured: string | undefined): RunAs | { refuse: string } {
  const me = userInfo().username;
  if (!configured || configured === me) return { user: me, prefix: [] };
  if (process.getuid?.() !== 0) return { refuse: `troubleshoot.runAs is "${configured}" but the agent runs as "${me}", not root, and cannot switch user` };
  return { user: configured, prefix: ['runuser', '-u', configured, '--'] };
}

/**
 * Environment for session processes: a clean, small one. The agent's own environment may hold
 * secrets (tokens in service units), and those must not leak into an operator's shell.
 */
export function sessionEnv(user: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: user === userInfo().username ? homedir() : `/home/${user}`,
    USER: user,
    LOGNAME: user,
    LANG: 'C.UTF-8',
    TERM: 'xterm-256color',
    SHELL: loginShell(),
    EDGEPLANE_SESSION: '1',
  };
}

export function loginShell(): string {
  return existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh';
}

/** A shell on a pseudo-terminal (node-pty), loaded on first use so an agent without it still runs. */
export async function spawnPty(runAs: RunAs, cols: number, rows: number): Promise<SessionProcess> {
  const mod = (await import('node-pty')) as Partial<typeof import('node-pty')> & { default?: typeof import('node-pty') };
  const pty = (mod.spawn ? mod : mod.default) as typeof import('node-pty');
  const env = sessionEnv(runAs.user);
  const [file, ...args] = runAs.prefix.length ? ['runuser', '-l', runAs.user] : [env.SHELL];
  const p = pty.spawn(file, args, { name: 'xterm-256color', cols, rows, cwd: env.HOME && existsSync(env.HOME) ? env.HOME : '/', env });
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

/** A command with pipes for stdin, stdout and stderr; the exit code passes through. */
export function spawnCommand(runAs: RunAs, argv: string[]): SessionProcess {
  const [file, ...args] = [...runAs.prefix, ...argv];
  const env = sessionEnv(runAs.user);
  const child: ChildProcess = spawn(file, args, { env, cwd: existsSync(env.HOME) ? env.HOME : '/', stdio: ['pipe', 'pipe', 'pipe'] });
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
      child.once('error', (err) => cb('stderr', Buffer.from(`cannot run ${argv[0]}: ${err.message}\n`)));
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

/** Bytes produced by a function (a support bundle), behind the same interface. */
export function streamProcess(source: NodeJS.ReadableStream & { pause(): void; resume(): void; destroy?(): void }): SessionProcess {
  let exitCb: ((code: number | null, signal: string | null) => void) | undefined;
  let done = false;
  const finish = (code: number) => {
    if (done) return;
    done = true;
    exitCb?.(code, null);
  };
  source.on('end', () => finish(0));
  source.on('error', () => finish(1));
  return {
    onData: (cb) => source.on('data', (d: Buffer | string) => cb('stdout', Buffer.isBuffer(d) ? d : Buffer.from(d))),
    onExit: (cb) => {
      exitCb = cb;
    },
    write: (_d, cb) => cb(),
    resize: () => {},
    eof: () => {},
    pause: () => source.pause(),
    resume: () => source.resume(),
    kill: () => {
      source.destroy?.();
      finish(1);
    },
  };
}
