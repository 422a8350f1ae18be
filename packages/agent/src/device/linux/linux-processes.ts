import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { spawnPipedProcess, spawnPtyProcess } from '../host-process.js';
import type { DeviceProcesses, ProcessOptions, SessionProcess } from '../processes.js';

/**
 * Processes on the real machine: a login shell on a PTY (node-pty) or a piped command, as the
 * agent's user or, through `runuser`, as another local user.
 */
export class LinuxProcesses implements DeviceProcesses {
  async shell(options: ProcessOptions & { cols: number; rows: number }): Promise<SessionProcess> {
    const user = switchTo(options.user);
    const env = sessionEnv(user ?? userInfo().username);
    const [file, ...args] = user ? ['runuser', '-l', user] : [env.SHELL];
    return spawnPtyProcess({ file, args, env, cwd: existsSync(env.HOME) ? env.HOME : '/' }, options.cols, options.rows);
  }

  async spawn(argv: string[], options: ProcessOptions = {}): Promise<SessionProcess> {
    const user = switchTo(options.user);
    const env = sessionEnv(user ?? userInfo().username);
    const [file, ...args] = [...(user ? ['runuser', '-u', user, '--'] : []), ...argv];
    return spawnPipedProcess({ file, args, env, cwd: existsSync(env.HOME) ? env.HOME : '/', name: argv[0] });
  }
}

/** The user to switch to; undefined when it is the agent's own. */
function switchTo(user: string | undefined): string | undefined {
  return user && user !== userInfo().username ? user : undefined;
}

/**
 * Environment for session processes: a clean, small one. The agent's own environment may hold
 * secrets (tokens in service units), and those must not leak into an operator's shell.
 */
export function sessionEnv(user: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: user === userInfo().username ? homedir() : `/home/${user}`,
    USER: user,
    LOGNAME: user,
    LANG: 'C.UTF-8',
    TERM: 'xterm-256color',
    SHELL: existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh',
    EDGEPLANE_SESSION: '1',
  };
}
