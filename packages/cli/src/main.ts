import { CommanderError } from 'commander';
import { type CliIo, defaultIo } from './io.js';
import { buildProgram } from './program.js';

/**
 * Runs the `edgeplane` command line (argv as in process.argv: node, script, args...) and resolves
 * to the exit code. Never exits the process; `io` replaces stdout, stderr, stdin, env and the
 * shutdown signal, so tests can run commands in-process. Its own module, apart from the package's
 * exports (index.ts), so that bin.ts loads only what the invoked command needs.
 */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const ctx = { io: defaultIo(io), exitCode: 0 };
  try {
    // Only the invoked command's module loads (see COMMAND_MODULES): start-up stays short.
    const program = await buildProgram(ctx, argv.slice(2));
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (err) {
    // Commander has printed its message, the help or the version already. `--version` ends here
    // too: answering it must not load the error renderer's API client.
    if (err instanceof CommanderError) return err.exitCode;
    const { renderError } = await import('./errors.js');
    return renderError(err, ctx.io);
  }
}
