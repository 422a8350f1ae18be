import type { Command } from 'commander';
import { intArg } from '../parse.js';
import { type CommandContext, examples } from './common.js';
import { describeEnd, exitCodeFor, pipeOutput, type SessionFlags, sessionLimits, startSession, withSessionOptions } from './session.js';

interface LogsFlags extends SessionFlags {
  follow?: boolean;
  lines: number;
  source: string;
}

export function registerLogs(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('logs')
    .summary("show an edge host's logs: the agent's own, journald, or a named log file")
    .description(
      "Stream logs from an edge host through its agent: the agent's own log (source agent, the default), " +
        'journald (source journal, or journal:UNIT) or a log file the site named in its agent config ' +
        '(troubleshoot.logFiles). Like every remote session it needs the hosts:remote-shell permission, is ' +
        'audited and recorded; without --reason the reason recorded is "read <source> log".',
    )
    .argument('<host>', 'edge host name')
    .option('-f, --follow', 'keep streaming new lines until Ctrl+C or the session limit')
    .option('-n, --lines <n>', 'how many of the last lines to show first', intArg('--lines'), 200)
    .option('-s, --source <name>', 'agent, journal, journal:UNIT, or a name from troubleshoot.logFiles', 'agent');
  withSessionOptions(cmd, false)
    .addHelpText(
      'after',
      examples('edgeplane logs nuc-01', 'edgeplane logs nuc-01 -f --lines 50', 'edgeplane logs nuc-01 --source journal:k3s -f --reason "INC-42"'),
    )
    .action((host: string, flags: LogsFlags) => streamLogs(ctx, host, flags, flags.source, flags.reason ?? `read ${flags.source} log`));
}

/**
 * Opens a logs session on `host` for `source` and pipes it to stdout until it ends (or Ctrl+C when
 * following). Shared by `logs` and `vm console` (a VM's serial console is a log source of its appliance).
 */
export async function streamLogs(
  ctx: CommandContext,
  host: string,
  flags: SessionFlags & { follow?: boolean; lines: number },
  source: string,
  reason: string,
): Promise<void> {
  const { io } = ctx;
  const logs = { source, follow: !!flags.follow, lines: flags.lines };
  const { attached } = await startSession(ctx, flags, host, { kind: 'logs', reason, logs, ...sessionLimits(flags) });
  pipeOutput(attached, io.stdout, io.stderr);
  const stop = () => attached.terminate();
  process.once('SIGINT', stop);
  try {
    const end = await attached.done;
    const why = describeEnd(end);
    if (why && !(flags.follow && end.reason === 'terminated')) io.stderr.write(`edgeplane: ${why}\n`);
    ctx.exitCode = flags.follow && end.reason === 'terminated' ? 0 : exitCodeFor(end);
  } finally {
    process.off('SIGINT', stop);
  }
}
