import { renderError } from './errors.js';
import { type CliIo, defaultIo } from './io.js';
import { buildProgram } from './program.js';

export { ApiClient, ApiError, NetworkError, type Resource, type ResourceList } from './api-client.js';
export { pushLayout } from './commands/image-options.js';
export { type CliConfig, type Context, configPath, loadConfig, resolveTarget, saveConfig } from './config.js';
export { CliError, renderError } from './errors.js';
export type { CliIo, OutStream } from './io.js';
export { buildProgram } from './program.js';

/**
 * Runs the `edgeplane` command line (argv as in process.argv: node, script, args...) and resolves
 * to the exit code. Never exits the process; `io` replaces stdout, stderr, stdin, env and the
 * shutdown signal, so tests can run commands in-process.
 */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const ctx = { io: defaultIo(io), exitCode: 0 };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (err) {
    return renderError(err, ctx.io);
  }
}
