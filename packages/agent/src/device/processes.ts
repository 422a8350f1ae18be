/** A running process on the device (a PTY shell or a piped command), seen as byte streams. */
export interface SessionProcess {
  onData(cb: (stream: 'stdout' | 'stderr', data: Buffer) => void): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  write(data: Buffer, done: () => void): void;
  resize(cols: number, rows: number): void;
  /** Ends input (stdin EOF); a PTY gets Ctrl-D. */
  eof(): void;
  pause(): void;
  resume(): void;
  kill(): void;
}

export interface ProcessOptions {
  /**
   * Local user to run as; undefined: the user the agent runs as. Switching needs the agent to run
   * as root (the caller checks that first, see troubleshoot/session-process.ts resolveRunAs).
   */
  user?: string;
}

/**
 * Interactive and streamed processes on the device, for remote sessions: the environment is a
 * clean, small one (the agent's own may hold secrets), never the agent's.
 */
export interface DeviceProcesses {
  /** The user's login shell on a pseudo-terminal of `cols` x `rows`. */
  shell(options: ProcessOptions & { cols: number; rows: number }): Promise<SessionProcess>;
  /**
   * `argv` (no shell) with pipes for stdin, stdout and stderr; the exit code passes through, and a
   * command that cannot start exits 127 as a shell reports it.
   */
  spawn(argv: string[], options?: ProcessOptions): Promise<SessionProcess>;
}
