/** Where a command reads and writes. `main` fills in the process defaults; tests pass their own. */
export interface OutStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface CliIo {
  stdout: OutStream;
  stderr: OutStream;
  stdin: NodeJS.ReadableStream;
  env: Record<string, string | undefined>;
  /**
   * Resolves (with the signal name) when a long-running command (server, agent, sim) should stop.
   * The default waits for SIGINT or SIGTERM; tests resolve it themselves.
   */
  waitForShutdown(): Promise<string>;
}

export function waitForProcessSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

export function defaultIo(overrides: Partial<CliIo> = {}): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    waitForShutdown: waitForProcessSignal,
    ...overrides,
  };
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
