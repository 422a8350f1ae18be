import type { Command } from 'commander';
import { type CommandContext, examples } from './common.js';
import { describeEnd, exitCodeFor, pipeOutput, type SessionFlags, sessionLimits, startSession, withSessionOptions } from './session.js';

/**
 * The size of the local terminal, 80x24 when it has none. A pty can report 0x0 (`script`, some CI
 * and ssh setups): that means "unknown" too, not a terminal without columns.
 */
export function terminalSize(out: { columns?: number; rows?: number }): { cols: number; rows: number } {
  const valid = (n: number | undefined, fallback: number) => (typeof n === 'number' && n >= 1 ? Math.min(n, 1000) : fallback);
  return { cols: valid(out.columns, 80), rows: valid(out.rows, 24) };
}

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
      const { cols, rows } = terminalSize(stdout);
      const { session, attached } = await startSession(ctx, flags, host, { kind: 'shell', reason: flags.reason!, cols, rows, ...sessionLimits(flags) });
      pipeOutput(attached, io.stdout, io.stderr);
      const raw = !!stdin.isTTY && typeof stdin.setRawMode === 'function';
      const onResize = () => {
        const size = terminalSize(stdout);
        attached.resize(size.cols, size.rows);
      };
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
