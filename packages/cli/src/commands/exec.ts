import type { Command } from 'commander';
import { CliError } from '../errors.js';
import { type CommandContext, examples } from './common.js';
import { describeEnd, exitCodeFor, pipeOutput, type SessionFlags, sessionLimits, startSession, withSessionOptions } from './session.js';

export function registerExec(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('exec')
    .summary('run a command on an edge host (non-interactive)')
    .description(
      "Run a command on an edge host through its agent's outbound connection. The command's stdout and " +
        'stderr stream back as they are produced, and `edgeplane exec` exits with its exit code. Standard ' +
        'input is forwarded when it is not a terminal. Needs the hosts:remote-shell permission (admins ' +
        'have it) and a reason, which goes to the audit log; the session is recorded.',
    )
    .argument('<host>', 'edge host name')
    .argument('<command...>', 'command and arguments (put them after --)');
  withSessionOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'edgeplane exec nuc-01 --reason "INC-42 check disk" -- df -h',
        'edgeplane exec nuc-01 --reason "INC-42" -- sh -c "systemctl status k3s; journalctl -n 50"',
        'cat fix.sh | edgeplane exec nuc-01 --reason "INC-42 apply fix" -- sh',
      ),
    )
    .action(async (host: string, command: string[], flags: SessionFlags) => {
      if (command.length === 0) throw new CliError('give the command after --, e.g. edgeplane exec HOST --reason "..." -- uptime');
      const { io } = ctx;
      const { attached } = await startSession(ctx, flags, host, { kind: 'exec', reason: flags.reason!, command, ...sessionLimits(flags) });
      pipeOutput(attached, io.stdout, io.stderr);
      const stdin = io.stdin as NodeJS.ReadStream;
      try {
        await attached.ready();
        if (stdin.isTTY) attached.eof();
        else {
          stdin.on('data', (d: Buffer) => attached.input(d));
          stdin.on('end', () => attached.eof());
        }
        const end = await attached.done;
        const why = describeEnd(end);
        if (why) io.stderr.write(`edgeplane: ${why}\n`);
        ctx.exitCode = exitCodeFor(end);
      } finally {
        stdin.pause?.();
        stdin.removeAllListeners?.('data');
      }
    });
}
