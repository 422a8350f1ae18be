import { execFile } from 'node:child_process';

/** Running a command on a device (no shell). */
export interface ExecOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/** Runs `command args` on the device; a non-zero exit rejects with an ExecError. */
export type Exec = (command: string, args: string[], options?: ExecOptions) => Promise<ExecResult>;

/** A command that exited non-zero (or could not start). `stderr` says why, as the tool put it. */
export class ExecError extends Error {
  constructor(
    readonly command: string,
    readonly args: string[],
    readonly stderr: string,
    readonly exitCode?: number,
    /** Set by tools that know: false when repeating the same command cannot succeed. */
    readonly retryable?: boolean,
  ) {
    super(`${command} ${args.slice(0, 2).join(' ')} failed${exitCode === undefined ? '' : ` (exit ${exitCode})`}: ${stderr.trim() || 'no output'}`);
    this.name = 'ExecError';
  }
}

/** Runs a real command with execFile (no shell); what LinuxDevice.exec does. */
export function execCommand(command: string, args: string[], options: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: options.timeoutMs ?? 120_000, signal: options.signal, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout: String(stdout), stderr: String(stderr) });
      const code = typeof err.code === 'number' ? err.code : undefined;
      reject(new ExecError(command, args, String(stderr).trim() || err.message, code));
    });
  });
}
