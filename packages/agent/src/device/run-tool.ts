import { execFile } from 'node:child_process';

export interface ToolResult {
  stdout: string;
  stderr: string;
}

/** Runs a tool (no shell) and returns its output; a non-zero exit becomes an Error naming the tool and its stderr. */
export function runTool(cmd: string, args: string[], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: options.timeoutMs ?? 60_000, signal: options.signal, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim() || err.message;
        reject(new Error(`${cmd} ${args[0] ?? ''} failed: ${detail}`));
      } else resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
