import { isAbsolute, join } from 'node:path';
import { SESSION_MAX_CHUNK_BYTES, type SessionFromAgent, type SessionToAgent } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.js';
import type { Device } from '../device/device.js';
import { vmConsoleDir } from '../managers/virt/domain-xml.js';
import { AGENT_LOG_FILE } from './agent-log.js';
import { logFileExists, tailLogFile, vmConsoleLogs } from './log-tail.js';
import { resolveRunAs, type SessionProcess, streamProcess } from './session-process.js';
import { type BundleSources, createSupportBundle } from './support-bundle.js';

type OpenMessage = Extract<SessionToAgent, { type: 'session.open' }>;

/** Sessions one agent runs at once: enough for a team, not enough to exhaust a small device. */
export const MAX_SESSIONS = 64;

interface AgentSession {
  id: string;
  proc?: SessionProcess;
  /** Bytes the agent may still send before the server acks (flow control). */
  credit: number;
  paused: boolean;
  seq: number;
  endReason?: string;
  ended: boolean;
  timers: NodeJS.Timeout[];
  idle?: NodeJS.Timeout;
  /** Frames that arrived while the process was starting; replayed once it runs. */
  early: SessionToAgent[];
}

export interface TroubleshootOptions {
  config: AgentConfig;
  logger: Logger;
  /** Sends a frame on the current channel; false when there is none. */
  send: (msg: SessionFromAgent) => boolean;
  /** What a support bundle collects besides files (state, inventory). */
  bundle: Omit<BundleSources, 'config' | 'logFiles'>;
  /** Where shells, commands and the journal run (Device.processes), and the line shown at their top (Device.sessionNotice). */
  device: Pick<Device, 'processes' | 'files' | 'sessionNotice'>;
}

/**
 * The agent's side of remote sessions: opens shells (PTY), commands, log streams and support bundles on
 * `session.open`, streams their output within the credit the server grants (session.ack), and enforces
 * the hard time limit and the idle timeout itself, so a session ends even if the server never says so.
 */
export class TroubleshootService {
  private readonly sessions = new Map<string, AgentSession>();

  constructor(private readonly o: TroubleshootOptions) {}

  get openSessions(): number {
    return this.sessions.size;
  }

  handle(msg: SessionToAgent): void {
    if (msg.type === 'session.open') {
      void this.open(msg).catch((err) => {
        this.o.logger.error({ err, session: msg.id }, 'cannot open remote session');
        this.refuse(msg.id, `cannot start: ${(err as Error).message}`);
      });
      return;
    }
    const s = this.sessions.get(msg.id);
    if (!s) return;
    switch (msg.type) {
      case 'session.input': {
        const data = Buffer.from(msg.data, 'base64');
        this.touch(s);
        if (!s.proc) {
          s.early.push(msg);
          return;
        }
        s.proc.write(data, () => this.o.send({ type: 'session.ack', id: s.id, bytes: Math.max(1, data.length) }));
        break;
      }
      case 'session.resize':
        if (s.proc) s.proc.resize(msg.cols, msg.rows);
        else s.early.push(msg);
        break;
      case 'session.eof':
        if (s.proc) s.proc.eof();
        else s.early.push(msg);
        break;
      case 'session.ack':
        s.credit += msg.bytes;
        if (s.paused && s.credit > 0) {
          s.paused = false;
          s.proc?.resume();
        }
        break;
      case 'session.close':
        this.stop(s, msg.reason, false);
        break;
    }
  }

  /** Ends every session (the channel is gone; nobody can see their output any more). */
  closeAll(reason: string): void {
    for (const s of [...this.sessions.values()]) this.stop(s, reason, false);
  }

  private refuse(id: string, reason: string): void {
    this.sessions.delete(id);
    this.o.logger.warn({ session: id, reason }, 'remote session refused');
    this.o.send({ type: 'session.refused', id, reason });
  }

  private async open(msg: OpenMessage): Promise<void> {
    const { troubleshoot } = this.o.config;
    if (this.sessions.has(msg.id)) return;
    if (this.sessions.size >= MAX_SESSIONS) return this.refuse(msg.id, `this host already runs ${MAX_SESSIONS} remote sessions; end one first`);
    if ((msg.kind === 'shell' || msg.kind === 'exec') && !troubleshoot.remoteShell)
      return this.refuse(msg.id, 'remote shell is disabled on this host (agent config troubleshoot.remoteShell: false)');
    const runAs = resolveRunAs(troubleshoot.runAs);
    if ('refuse' in runAs) return this.refuse(msg.id, runAs.refuse);
    const s: AgentSession = { id: msg.id, credit: msg.window, paused: false, seq: 0, ended: false, timers: [], early: [] };
    this.sessions.set(msg.id, s);
    let proc: SessionProcess;
    const { processes } = this.o.device;
    if (msg.kind === 'shell') proc = await processes.shell({ user: runAs.switchTo, cols: msg.cols, rows: msg.rows });
    else if (msg.kind === 'exec') proc = await processes.spawn(msg.command ?? ['true'], { user: runAs.switchTo });
    else if (msg.kind === 'logs') {
      const logs = await this.logs(msg.logs ?? { source: 'agent', follow: false, lines: 200 });
      if (typeof logs === 'string') return this.refuse(msg.id, logs);
      proc = logs;
    } else {
      const bundle = await createSupportBundle({ ...this.o.bundle, config: this.o.config, logFiles: this.logFilePaths() });
      proc = streamProcess(bundle);
    }
    if (s.ended) return proc.kill(); // closed while starting
    s.proc = proc;
    proc.onData((stream, data) => this.output(s, stream, data));
    proc.onExit((code, signal) => this.exited(s, code, signal));
    s.timers.push(setTimeout(() => this.stop(s, 'ttl', true), msg.ttlSeconds * 1000));
    s.idle = setTimeout(() => this.stop(s, 'idle', true), msg.idleTimeoutSeconds * 1000);
    s.timers.push(s.idle);
    this.o.logger.info({ session: msg.id, kind: msg.kind, runAs: runAs.user }, 'remote session opened');
    this.o.send({ type: 'session.opened', id: msg.id, user: runAs.user });
    const notice = msg.kind === 'shell' || msg.kind === 'exec' ? this.o.device.sessionNotice(runAs.user) : undefined;
    // A shell shows it on its terminal (one stream, CRLF); a command on stderr, so its stdout stays the command's own.
    if (notice) this.output(s, msg.kind === 'shell' ? 'stdout' : 'stderr', Buffer.from(msg.kind === 'shell' ? `${notice}\r\n` : `${notice}\n`));
    for (const early of s.early.splice(0)) this.handle(early);
  }

  private logFilePaths(): Record<string, string> {
    const { config } = this.o;
    const files: Record<string, string> = { agent: join(config.dataDir, AGENT_LOG_FILE) };
    for (const [name, path] of Object.entries(config.troubleshoot.logFiles))
      files[name] = isAbsolute(path) && config.deviceRoot !== '/' ? join(config.deviceRoot, path) : path;
    // An appliance: each VM's serial console, as `vm:<domain>`.
    if (config.virt) Object.assign(files, vmConsoleLogs(vmConsoleDir(config.dataDir)));
    return files;
  }

  /**
   * The requested log, or a refusal message. The journal is the device's (journalctl runs on it, as
   * the agent's own user); log files named in the agent's config are read by the agent itself.
   */
  private async logs(req: { source: string; follow: boolean; lines: number }): Promise<SessionProcess | string> {
    if (req.source === 'journal' || req.source.startsWith('journal:')) {
      let journalctl: string | undefined;
      for (const p of ['/usr/bin/journalctl', '/bin/journalctl']) if (!journalctl && (await this.o.device.files.stat(p))) journalctl = p;
      if (!journalctl) return 'journald is not available on this host (no journalctl)';
      const unit = req.source.slice('journal:'.length);
      return this.o.device.processes.spawn([journalctl, '--no-pager', '-n', String(req.lines), ...(unit ? ['-u', unit] : []), ...(req.follow ? ['-f'] : [])]);
    }
    const files = this.logFilePaths();
    const file = files[req.source];
    if (!file) return `unknown log source "${req.source}"; this host has: ${[...Object.keys(files), 'journal'].join(', ')}`;
    if (!logFileExists(file)) return `log "${req.source}" (${file}) does not exist on this host`;
    return tailLogFile(file, req.lines, req.follow);
  }

  private touch(s: AgentSession): void {
    s.idle?.refresh();
  }

  private output(s: AgentSession, stream: 'stdout' | 'stderr', data: Buffer): void {
    if (s.ended) return;
    this.touch(s);
    for (let off = 0; off < data.length; off += SESSION_MAX_CHUNK_BYTES) {
      const chunk = data.subarray(off, off + SESSION_MAX_CHUNK_BYTES);
      s.credit -= chunk.length;
      this.o.send({ type: 'session.output', id: s.id, data: chunk.toString('base64'), seq: s.seq++, stream });
    }
    // Out of credit: stop reading the process until the server acks (the process blocks on its pipe).
    if (s.credit <= 0 && !s.paused) {
      s.paused = true;
      s.proc?.pause();
    }
  }

  private exited(s: AgentSession, code: number | null, signal: string | null): void {
    const alreadyEnded = s.ended;
    this.finish(s);
    if (alreadyEnded) return; // ended by the server: it needs no exit frame
    this.o.logger.info({ session: s.id, code, signal, reason: s.endReason ?? 'exit' }, 'remote session ended');
    this.o.send({ type: 'session.exit', id: s.id, code: s.endReason ? null : code, signal, reason: s.endReason ?? 'exit' });
  }

  private finish(s: AgentSession): void {
    s.ended = true;
    for (const t of s.timers) clearTimeout(t);
    this.sessions.delete(s.id);
  }

  /** Ends a session: kills its process; `tell` sends session.exit with the reason (agent-side limits). */
  private stop(s: AgentSession, reason: string, tell: boolean): void {
    if (s.ended || s.endReason) return;
    s.endReason = reason;
    if (s.paused) s.proc?.resume(); // let the process see its pipes close
    if (!tell) s.ended = true; // the server already ended it: no exit frame
    if (!s.proc) {
      this.finish(s);
      if (tell) this.o.send({ type: 'session.exit', id: s.id, code: null, signal: null, reason });
      return;
    }
    if (!tell) this.finish(s);
    s.proc.kill();
  }
}
