import { CommanderError } from 'commander';
import { ApiError, NetworkError } from './api-client.js';
import type { CliIo } from './io.js';

/** An error the user can act on; printed as `Error: <message>` without a stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Formats an API error body as the CLI prints it: the code, the message, then each validation issue. */
export function formatApiError(err: ApiError, prefix = ''): string {
  const lines = [`Error (${err.code}): ${prefix}${err.message}`];
  const issues = err.details?.issues;
  if (Array.isArray(issues)) {
    for (const issue of issues) {
      const { path, message } = (issue ?? {}) as { path?: unknown; message?: unknown };
      const line = `${typeof path === 'string' && path ? path : '(root)'}: ${String(message ?? '')}`;
      // The server's message already names the first problem: do not print it twice.
      if (!err.message.includes(line)) lines.push(`  ${line}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Prints any error thrown by a command to stderr and returns the exit code. */
export function renderError(err: unknown, io: CliIo): number {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help text).
    return err.exitCode;
  }
  if (err instanceof ApiError) {
    io.stderr.write(formatApiError(err));
    return 1;
  }
  if (err instanceof NetworkError) {
    io.stderr.write(`Error: ${err.message}\n`);
    return 1;
  }
  if (err instanceof CliError) {
    io.stderr.write(`Error: ${err.message}\n`);
    return err.exitCode;
  }
  // Raised in this process (`edgeplane server` start-up): printed with its code, like an API error.
  // Recognised by shape, not instanceof: importing the protocol index here would load zod into every
  // command's start-up (get and describe read a plain-data kind table).
  if (err instanceof Error && err.name === 'EdgeplaneError' && typeof (err as { code?: unknown }).code === 'string') {
    io.stderr.write(`Error (${(err as unknown as { code: string }).code}): ${err.message}\n`);
    return 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr.write(`Error: ${message}\n`);
  if (io.env.EDGEPLANE_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
  return 1;
}
