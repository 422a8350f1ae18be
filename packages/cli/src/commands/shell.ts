import type { Command } from 'commander';
import { type CommandContext, examples } from './common.js';
import { describeEnd, exitCodeFor, pipeOutput, type SessionFlags, sessionLimits, startSession, withSessionOptions } from './session.js';

export function registerShell(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('shell')
    .summary('open an interactive shell on an edge host')
    .description(
      "Open a shell on an edge host, on a real terminal (PTY) on the device, through the agent's outbound " +
        'connection: no inbound port at the site. Your terminal is switched to raw mode, window size changes ' +
        "follow, and `edgeplane shell` exits with the shell's exit code. The shell runs as the local user the " +
        'site configured (agent config troubleshoot.runAs). Needs the hosts:remote-shell permission and a reason, ' +
        'which goes to the audit log; the session is recorded (`edgeplane session recording ID`).',
    )
    .argument('<host>', 'edge host name');
  withSessionOptions(cmd)
    .addHelpText(
      'after',
      examples('edgeplane shell nuc-01 --reason "INC-42 k3s not starting"', 'edgeplane shell nuc-01 --reason "maintenance" --ttl 1h --idle-timeout 5m'),
    )
    .action(async (host: string, flags: SessionFlags) => {
      const { io } = ctx;
      const stdin = io.stdin as NodeJS.ReadStream;
      const stdout = io.stdout as NodeJS.WriteStream;
      const cols = stdout.columns ?? 80;
      const rows = stdout.rows ?? 24;
      const { session, attached } = await startSession(ctx, flags, host, { kind: 'shell', reason: flags.reason!, cols, rows, ...sessionLimits(flags) });
      pipeOutput(attached, io.stdout, io.stderr);
      const raw = !!stdin.isTTY && typeof stdin.setRawMode === 'function';
      const onResize = () => attached.resize(stdout.columns ?? cols, stdout.rows ?? rows);
      try {
        await attached.ready();
        if (raw) {
          stdin.setRawMode(true);
          io.stderr.write(`Connected to ${host} (session ${session.metadata.name}). Exit the shell to leave.\r\n`);
        }
        stdin.on('data', (d: Buffer) => attached.input(d));
        stdin.on('end', () => attached.eof());
        stdin.resume();
        process.on('SIGWINCH', onResize);
        const end = await attached.done;
        if (raw) stdin.setRawMode(false);
        const why = describeEnd(end);
        if (why) io.stderr.write(`\r\nedgeplane: ${why}\n`);
        ctx.exitCode = exitCodeFor(end);
      } finally {
        process.off('SIGWINCH', onResize);
        if (raw) stdin.setRawMode(false);
        stdin.pause();
        stdin.removeAllListeners('data');
      }
    });
}
