import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

export class VirshError extends Error {
  constructor(
    message: string,
    readonly command: string[],
  ) {
    super(message);
    this.name = 'VirshError';
  }
}

interface Pending {
  id: number;
  argv: string[];
  resolve(out: string): void;
  reject(err: Error): void;
  timer?: NodeJS.Timeout;
}

const PROMPT_LINE = /^virsh # .*(?:\n|$)/gm;

/**
 * One long-lived interactive `virsh -q -c URI` process, driven over stdin. libvirt's test driver
 * (test:///default) keeps its state only within one connection, and a real appliance saves a
 * connection per command, so the agent keeps one session per URI and queues commands through it.
 *
 * Framing: after each command the session sends an unknown command `__ep_mark_N` (virsh writes
 * "unknown command: '__ep_mark_N'" to stderr) and `echo __ep_done_N__` (to stdout). A command is
 * complete when both markers arrived; what came before them on each stream belongs to it. Anything
 * on stderr starting with "error:" fails the command. virsh echoes a "virsh # <cmd>" prompt line
 * per command even without a terminal; those lines are dropped.
 */
export class VirshSession {
  private proc?: ChildProcessWithoutNullStreams;
  private queue: Pending[] = [];
  private current?: Pending;
  private out = '';
  private err = '';
  private seq = 0;
  private closed = false;

  constructor(
    readonly uri: string,
    private readonly options: { binary?: string; timeoutMs?: number } = {},
  ) {}

  /** Runs one virsh command (argv without "virsh"); resolves with its stdout, rejects with VirshError. */
  run(...argv: string[]): Promise<string> {
    for (const a of argv) if (/['\n\r]/.test(a) || a === '') throw new VirshError(`argument not allowed in a virsh session: ${JSON.stringify(a)}`, argv);
    if (this.closed) return Promise.reject(new VirshError('virsh session closed', argv));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: ++this.seq, argv, resolve, reject });
      this.pump();
    });
  }

  /** Ends the virsh process; queued commands fail. */
  async close(): Promise<void> {
    this.closed = true;
    const proc = this.proc;
    this.fail(new Error('virsh session closed'));
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.stdin.end('quit\n');
      setTimeout(() => proc.kill('SIGKILL'), 2000).unref();
    });
  }

  private start(): ChildProcessWithoutNullStreams {
    const proc = spawn(this.options.binary ?? 'virsh', ['-q', '-c', this.uri], { stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } });
    // A write to a virsh that just died fails with EPIPE; its exit handler reports that.
    proc.stdin.on('error', () => undefined);
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    // Events of a process this session already replaced (after a timeout) are ignored.
    proc.stdout.on('data', (d: string) => {
      if (this.proc !== proc) return;
      this.out += d;
      this.check();
    });
    proc.stderr.on('data', (d: string) => {
      if (this.proc !== proc) return;
      this.err += d;
      this.check();
    });
    proc.on('error', (e: NodeJS.ErrnoException) => {
      if (this.proc !== proc) return;
      this.proc = undefined;
      this.fail(e.code === 'ENOENT' ? new Error('virsh not found (Debian: apt-get install libvirt-clients)') : e);
    });
    proc.on('exit', (code) => {
      if (this.proc !== proc) return;
      this.proc = undefined;
      // A connection failure (bad URI, libvirtd down) ends virsh: fail what waits, restart on the next command.
      const why = this.err.split('\n').find((l) => l.startsWith('error:'));
      this.fail(new Error(`virsh -c ${this.uri} exited (${code})${why ? `: ${why.slice(7)}` : ''}`));
    });
    this.out = '';
    this.err = '';
    return proc;
  }

  private fail(err: Error): void {
    const all = [...(this.current ? [this.current] : []), ...this.queue];
    this.current = undefined;
    this.queue = [];
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(new VirshError(err.message, p.argv));
    }
  }

  private pump(): void {
    if (this.current || this.queue.length === 0 || this.closed) return;
    if (!this.proc) this.proc = this.start();
    const p = this.queue.shift()!;
    this.current = p;
    p.timer = setTimeout(() => {
      // A hung command leaves the stream framing unknown: restart the process.
      this.proc?.kill('SIGKILL');
      this.proc = undefined;
      this.current = undefined;
      p.reject(new VirshError(`virsh ${p.argv[0]} timed out`, p.argv));
      this.pump();
    }, this.options.timeoutMs ?? 60_000);
    const line = p.argv.map((a) => (/^[A-Za-z0-9._/:=,+-]+$/.test(a) ? a : `'${a}'`)).join(' ');
    this.proc.stdin.write(`${line}\n__ep_mark_${p.id}\necho __ep_done_${p.id}__\n`);
  }

  private check(): void {
    const p = this.current;
    if (!p) return;
    // virsh echoes "virsh # echo __ep_done_N__" itself: the marker counts only as echo's output.
    const done = new RegExp(`(?<!echo )__ep_done_${p.id}__`).exec(this.out);
    const doneAt = done ? done.index : -1;
    const markRe = new RegExp(`^.*unknown command: '__ep_mark_${p.id}'.*$`, 'm');
    const mark = markRe.exec(this.err);
    if (doneAt < 0 || !mark) return;
    const stdout = this.out.slice(0, doneAt).replace(PROMPT_LINE, '');
    const stderr = this.err.slice(0, mark.index);
    this.out = this.out.slice(doneAt + `__ep_done_${p.id}__`.length);
    this.err = this.err.slice(mark.index + mark[0].length + 1);
    this.current = undefined;
    clearTimeout(p.timer);
    const errors = stderr
      .split('\n')
      .filter((l) => l.startsWith('error:'))
      .map((l) => l.slice(6).trim());
    if (errors.length) p.reject(new VirshError(errors.join('; '), p.argv));
    else p.resolve(stdout);
    this.pump();
  }
}
