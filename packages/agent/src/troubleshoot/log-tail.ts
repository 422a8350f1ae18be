import { existsSync, readdirSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { SessionProcess } from '../device/processes.js';

/** How much of a file's end is searched for its last lines. */
const TAIL_WINDOW = 1024 * 1024;
/** How often a followed file is checked for new lines, truncation or rotation. */
const FOLLOW_POLL_MS = 250;

/** Whether a log file named in the agent's config exists (read by the agent, like the support bundle). */
export function logFileExists(file: string): boolean {
  return existsSync(file);
}

/**
 * The serial console logs of an appliance's VMs (`vm:<domain>` -> file), which libvirt's virtlogd
 * writes into the agent's data dir; none on a host that runs no VMs.
 */
export function vmConsoleLogs(consoleDir: string): Record<string, string> {
  const found: Record<string, string> = {};
  let names: string[] = [];
  try {
    names = readdirSync(consoleDir);
  } catch {
    return found;
  }
  for (const name of names.sort()) if (name.endsWith('.log')) found[`vm:${name.slice(0, -'.log'.length)}`] = `${consoleDir}/${name}`;
  return found;
}

/**
 * The last `lines` lines of a log file the agent's config names, then (follow) what is appended to
 * it, like `tail -n <lines> -F`: a truncated or replaced (rotated) file is read again from its start.
 * The agent reads these files itself, as the support bundle does: they are the agent's own log and
 * files its configuration names, not something an operator runs on the device.
 */
export function tailLogFile(file: string, lines: number, follow: boolean): SessionProcess {
  const dataCbs: ((stream: 'stdout' | 'stderr', data: Buffer) => void)[] = [];
  const exitCbs: ((code: number | null, signal: string | null) => void)[] = [];
  let ended = false;
  let paused = false;
  let held: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const emit = (data: Buffer) => {
    if (!data.length) return;
    if (paused) held.push(data);
    else for (const cb of dataCbs) cb('stdout', data);
  };
  const end = (code: number | null, signal: string | null) => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    // Exit after the callers attached (the service attaches right after this returns).
    setImmediate(() => {
      for (const cb of exitCbs) cb(code, signal);
    });
  };

  let position = 0;
  let inode = 0;
  const readFrom = async (from: number, to: number): Promise<Buffer> => {
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(to - from);
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  };
  const start = async () => {
    const st = await stat(file);
    inode = st.ino;
    const from = Math.max(0, st.size - TAIL_WINDOW);
    emit(lastLines(await readFrom(from, st.size), lines));
    position = st.size;
  };
  const poll = async () => {
    const st = await stat(file).catch(() => undefined);
    if (st && (st.ino !== inode || st.size < position)) {
      inode = st.ino; // rotated or truncated: the new content from its start
      position = 0;
    }
    if (st && st.size > position && !paused) {
      emit(await readFrom(position, st.size));
      position = st.size;
    }
  };
  const loop = () => {
    timer = setTimeout(() => {
      void poll()
        .catch(() => undefined)
        .finally(() => !ended && loop());
    }, FOLLOW_POLL_MS);
  };
  setImmediate(() => {
    start()
      .then(() => (follow ? loop() : end(0, null)))
      .catch((err: Error) => {
        for (const cb of dataCbs) cb('stderr', Buffer.from(`cannot read ${file}: ${err.message}\n`));
        end(1, null);
      });
  });

  return {
    onData: (cb) => dataCbs.push(cb),
    onExit: (cb) => exitCbs.push(cb),
    write: (_data, done) => done(),
    resize: () => {},
    eof: () => {},
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      const out = held;
      held = [];
      for (const d of out) emit(d);
    },
    kill: () => end(null, 'SIGTERM'),
  };
}

/** The last `n` lines of `buf` (a final line without a newline counts). */
function lastLines(buf: Buffer, n: number): Buffer {
  let end = buf.length;
  if (end > 0 && buf[end - 1] === 0x0a) end--; // the trailing newline ends the last line
  let idx = end;
  for (let found = 0; found < n; found++) {
    if (idx <= 0) return buf;
    idx = buf.lastIndexOf(0x0a, idx - 1);
    if (idx < 0) return buf;
  }
  return buf.subarray(idx + 1);
}
