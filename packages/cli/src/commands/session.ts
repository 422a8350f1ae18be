import { createWriteStream } from 'node:fs';
import { serverTrust } from '@edgeplane/agent/tls';
import type { Command } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { resolveTarget } from '../config.js';
import { CliError } from '../errors.js';
import type { OutStream } from '../io.js';
import { parseDuration } from '../parse.js';
import { type AttachedSession, openSession, type SessionEnd } from '../remote-session-client.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';

export interface SessionFlags extends ConnectionFlags {
  reason?: string;
  ttl?: number;
  idleTimeout?: number;
}

/** Adds --reason, --ttl and --idle-timeout, which every session command takes. */
export function withSessionOptions(cmd: Command, reasonRequired = true): Command {
  const reason = '--reason <text>';
  const help = 'why you need this session; recorded in the audit log';
  (reasonRequired ? cmd.requiredOption(reason, `${help} (required)`) : cmd.option(reason, help))
    .option('--ttl <duration>', 'hard time limit, e.g. 15m, 1h (default 15m, at most 4h)', parseDuration)
    .option('--idle-timeout <duration>', 'end the session after this long without input or output (default 10m)', parseDuration);
  return withConnectionOptions(cmd);
}

export function sessionLimits(flags: SessionFlags): { ttlSeconds?: number; idleTimeoutSeconds?: number } {
  return {
    ...(flags.ttl ? { ttlSeconds: Math.ceil(flags.ttl / 1000) } : {}),
    ...(flags.idleTimeout ? { idleTimeoutSeconds: Math.ceil(flags.idleTimeout / 1000) } : {}),
  };
}

/** The exit code a session's end maps to: the remote code, 128+n for a signal, 1 otherwise. */
export function exitCodeFor(end: SessionEnd): number {
  if (end.refused) return 1;
  if (end.code !== null) return end.code;
  const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  if (end.signal) return 128 + (signals[end.signal] ?? 1);
  return end.reason === 'exit' ? 0 : 1;
}

/** Explains a session that ended for another reason than its process exiting. */
export function describeEnd(end: SessionEnd): string | undefined {
  if (end.refused) return `the host refused the session: ${end.reason}`;
  const why: Record<string, string> = {
    ttl: 'the session reached its time limit (--ttl)',
    idle: 'the session was idle for too long (--idle-timeout)',
    terminated: 'the session was terminated',
    'agent-disconnected': 'the agent disconnected',
    'server-shutdown': 'the server shut down',
  };
  return end.reason === 'exit' ? undefined : (why[end.reason] ?? `the session ended: ${end.reason}`);
}

/** Writes with backpressure: the session pauses while the local stream is full. */
export function pipeOutput(session: AttachedSession, stdout: OutStream, stderr: OutStream): void {
  const write = (stream: OutStream, data: Buffer) => {
    const ok = (stream as NodeJS.WritableStream).write(data as unknown as string);
    if (ok === false && typeof (stream as NodeJS.WritableStream).once === 'function') {
      session.pause();
      (stream as NodeJS.WritableStream).once('drain', () => session.resume());
    }
  };
  session.on('output', (s, data) => write(s === 'stderr' ? stderr : stdout, data));
}

/** Opens a session on HOST and attaches with the context's token. */
export async function startSession(ctx: CommandContext, flags: SessionFlags, host: string, body: Parameters<typeof openSession>[3]) {
  const client = clientFor(flags, ctx.io);
  const { token } = resolveTarget(flags, ctx.io.env);
  return openSession(client, token, host, body);
}

export function registerSession(program: Command, ctx: CommandContext): void {
  const group = program
    .command('session')
    .summary('manage remote sessions: terminate one, download its recording')
    .description(
      'Remote sessions (shell, exec, logs, support bundles) are RemoteSession resources: list them with ' +
        '`edgeplane get remotesessions`. Every session is recorded as an asciicast v2 file, which ' +
        '`asciinema play` replays.',
    )
    .addHelpText(
      'after',
      examples('edgeplane get remotesessions', 'edgeplane session terminate rs-0123456789ab', 'edgeplane session recording rs-0123456789ab -o s.cast'),
    );

  withConnectionOptions(group.command('terminate').summary('end a running session now').argument('<id>', 'session id (rs-...)'))
    .addHelpText('after', examples('edgeplane session terminate rs-0123456789ab'))
    .action(async (id: string, flags: ConnectionFlags) => {
      const s = await clientFor(flags, ctx.io).request<{ status?: { phase?: string; endReason?: string } }>(
        'POST',
        `remotesessions/${encodeURIComponent(id)}/terminate`,
      );
      ctx.io.stdout.write(`remotesessions/${id} ${s.status?.phase ?? 'ended'} (${s.status?.endReason ?? 'terminated'})\n`);
    });

  withConnectionOptions(
    group
      .command('recording')
      .summary('download the asciicast v2 recording of a session')
      .argument('<id>', 'session id (rs-...)')
      .option('-o, --output <file>', 'write to this file instead of stdout'),
  )
    .addHelpText('after', examples('edgeplane session recording rs-0123456789ab -o session.cast && asciinema play session.cast'))
    .action(async (id: string, flags: ConnectionFlags & { output?: string }) => {
      const target = resolveTarget(flags, ctx.io.env);
      const res = await serverTrust(target.caFile).fetch(`${target.server.replace(/\/+$/, '')}/api/v1/remotesessions/${encodeURIComponent(id)}/recording`, {
        headers: target.token ? { authorization: `Bearer ${target.token}` } : {},
      });
      const text = await res.text();
      if (!res.ok) {
        let msg = text;
        try {
          const e = JSON.parse(text).error;
          msg = `(${e.code}) ${e.message}`;
        } catch {}
        throw new CliError(`cannot download the recording: ${msg}`);
      }
      if (flags.output) {
        await new Promise<void>((resolve, reject) =>
          createWriteStream(flags.output!)
            .end(text, () => resolve())
            .on('error', reject),
        );
        ctx.io.stderr.write(`Wrote ${flags.output}\n`);
      } else ctx.io.stdout.write(text);
    });
}
