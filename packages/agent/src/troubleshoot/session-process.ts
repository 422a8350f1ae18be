import { userInfo } from 'node:os';
import type { SessionProcess } from '../device/processes.js';

export type { SessionProcess } from '../device/processes.js';

/** Who sessions run as: `user` (reported to the server); `switchTo` is set when that is not the agent's own user. */
export interface RunAs {
  user: string;
  /** The user the device switches to (it runs as root); undefined: the agent's own user. */
  switchTo?: string;
}

/** Decides the user sessions run as; returns a refusal message when the agent cannot become that user. */
export function resolveRunAs(configured: string | undefined): RunAs | { refuse: string } {
  const me = userInfo().username;
  if (!configured || configured === me) return { user: me };
  if (process.getuid?.() !== 0) return { refuse: `troubleshoot.runAs is "${configured}" but the agent runs as "${me}", not root, and cannot switch user` };
  return { user: configured, switchTo: configured };
}

/** Bytes produced by a function (a support bundle), behind the same interface. */
export function streamProcess(source: NodeJS.ReadableStream & { pause(): void; resume(): void; destroy?(): void }): SessionProcess {
  let exitCb: ((code: number | null, signal: string | null) => void) | undefined;
  let done = false;
  const finish = (code: number) => {
    if (done) return;
    done = true;
    exitCb?.(code, null);
  };
  source.on('end', () => finish(0));
  source.on('error', () => finish(1));
  return {
    onData: (cb) => source.on('data', (d: Buffer | string) => cb('stdout', Buffer.isBuffer(d) ? d : Buffer.from(d))),
    onExit: (cb) => {
      exitCb = cb;
    },
    write: (_d, cb) => cb(),
    resize: () => {},
    eof: () => {},
    pause: () => source.pause(),
    resume: () => source.resume(),
    kill: () => {
      source.destroy?.();
      finish(1);
    },
  };
}
