/**
 * SIMULATION: where a simulated host's remote shells and commands run. They must not run on the
 * machine that runs the simulator as if it were the host, so each one runs in a bubblewrap sandbox
 * (`bwrap`, Debian package bubblewrap): new mount, PID, IPC and UTS namespaces whose `/` is the
 * simulated device's root directory (written files land there), with the simulator machine's /usr
 * (and /bin, /lib... as on that machine) bound read-only so the usual tools exist. Nothing else of
 * that machine is visible: not its /etc, /home, /root, /tmp or the agent's data dir. The network
 * namespace is shared (the simulated fleet lives on the simulator machine's network). A simulator
 * running as root starts it with no capabilities (and switches to another session user with setpriv);
 * one running as a normal user gets a user namespace as well.
 *
 * A shell gets its terminal from `script` inside the sandbox: the PTY node-pty allocates outside
 * belongs to the simulator machine's /dev/pts, which the sandbox does not show.
 */
import { access, chmod, constants, lstat, mkdir, readFile, readlink, symlink } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../atomic-file.js';
import { type HostProcessSpec, spawnPipedProcess, spawnPtyProcess } from '../host-process.js';
import type { DeviceProcesses, ProcessOptions, SessionProcess } from '../processes.js';

/** Directories of the simulator's machine the sandbox shows, read-only (if they exist there). */
const HOST_SYSTEM_DIRS = ['usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];
/** Directories every simulated host has, created in its root on first use, with their modes on Debian. */
const DEVICE_DIRS: Record<string, number> = {
  '.': 0o755,
  etc: 0o755,
  root: 0o700,
  home: 0o755,
  tmp: 0o1777,
  var: 0o755,
  'var/tmp': 0o1777,
  'var/log': 0o755,
  run: 0o755,
  opt: 0o755,
  srv: 0o755,
};

export const SANDBOX_NOTICE = (user: string) =>
  `simulated host: this command runs in the simulator's bubblewrap sandbox (/ is the simulated device's root; /usr is the simulator machine's, read-only) as ${user}`;

interface SandboxUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export class SimSandbox implements DeviceProcesses {
  constructor(
    private readonly root: string,
    private readonly hostname: () => Promise<string>,
  ) {}

  async shell(options: ProcessOptions & { cols: number; rows: number }): Promise<SessionProcess> {
    const user = await this.prepare(options.user);
    // `script` gives the shell a terminal of the sandbox's own devpts (-e: its exit code passes through).
    const spec = await this.spec(user, ['/usr/bin/script', '-qefc', '/bin/bash -l', '/dev/null'], false);
    return spawnPtyProcess(spec, options.cols, options.rows);
  }

  async spawn(argv: string[], options: ProcessOptions = {}): Promise<SessionProcess> {
    const user = await this.prepare(options.user);
    // Through sh's exec so a command that cannot start exits 127 (bwrap's own exec failure exits 1).
    return spawnPipedProcess({ ...(await this.spec(user, ['/bin/sh', '-c', 'exec "$@"', 'sh', ...argv], true)), name: argv[0] });
  }

  /**
   * The bwrap command line that runs `argv` in the sandbox as `user`. A simulator running as root
   * starts the sandbox without capabilities (root in it owns the device's files and nothing else);
   * another session user is switched to with setpriv, which keeps only that user's rights. A
   * simulator running as a normal user gets a user namespace that maps its own uid.
   */
  private async spec(user: SandboxUser, argv: string[], newSession: boolean): Promise<HostProcessSpec> {
    const env = sandboxEnv(user);
    const asRoot = process.getuid?.() === 0;
    const args: string[] = [];
    if (!asRoot) args.push('--unshare-user', '--uid', String(user.uid), '--gid', String(user.gid));
    else args.push('--cap-drop', 'ALL', ...(user.uid === 0 ? [] : ['--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID']));
    const switchUser = asRoot && user.uid !== 0 ? ['/usr/bin/setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--'] : [];
    args.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--hostname', await this.hostname());
    args.push('--die-with-parent', ...(newSession ? ['--new-session'] : []));
    args.push('--bind', this.root, '/');
    for (const dir of HOST_SYSTEM_DIRS) {
      const st = await lstat(`/${dir}`).catch(() => undefined);
      if (st?.isDirectory()) args.push('--ro-bind', `/${dir}`, `/${dir}`);
    }
    // Debian's /usr/bin links some tools through /etc/alternatives.
    if (await lstat('/etc/alternatives').catch(() => undefined)) args.push('--ro-bind', '/etc/alternatives', '/etc/alternatives');
    args.push('--proc', '/proc', '--dev', '/dev');
    const home = (await lstat(join(this.root, user.home)).catch(() => undefined))?.isDirectory() ? user.home : '/';
    args.push('--chdir', home, '--clearenv');
    for (const [k, v] of Object.entries({ ...env, HOME: home === '/' ? env.HOME : home })) args.push('--setenv', k, v);
    return { file: 'bwrap', args: [...args, '--', ...switchUser, ...argv], env, cwd: '/' };
  }

  /**
   * Readies the simulated device's root for a sandbox: its base directories, the host's
   * /bin -> usr/bin style links (bwrap cannot make a link that exists), and /etc/passwd and
   * /etc/group entries for the session user (a simulated host's own files, kept from then on).
   */
  private prepare(name: string | undefined): Promise<SandboxUser> {
    const key = name ?? userInfo().username;
    // Once per user and device: concurrent sessions must not race on the links and passwd lines.
    let ready = this.ready.get(key);
    if (!ready) {
      ready = this.prepareOnce(key);
      this.ready.set(key, ready);
      ready.catch(() => this.ready.delete(key));
    }
    return ready;
  }

  private readonly ready = new Map<string, Promise<SandboxUser>>();

  private async prepareOnce(name: string): Promise<SandboxUser> {
    if (!(await onPath('bwrap')))
      throw new Error("a simulated host's shells and commands run in a bubblewrap sandbox: install bwrap (Debian: apt-get install bubblewrap)");
    const user = await lookupUser(name);
    for (const [dir, mode] of Object.entries(DEVICE_DIRS)) {
      await mkdir(join(this.root, dir), { recursive: true });
      await chmod(join(this.root, dir), mode);
    }
    for (const dir of HOST_SYSTEM_DIRS) {
      const st = await lstat(`/${dir}`).catch(() => undefined);
      if (!st?.isSymbolicLink()) continue;
      const inRoot = await lstat(join(this.root, dir)).catch(() => undefined);
      if (!inRoot) await symlink(await readlink(`/${dir}`), join(this.root, dir));
    }
    await addLine(join(this.root, 'etc/passwd'), 'root', 'root:x:0:0:root:/root:/bin/bash');
    await addLine(join(this.root, 'etc/group'), 'root', 'root:x:0:');
    await addLine(join(this.root, 'etc/passwd'), user.name, `${user.name}:x:${user.uid}:${user.gid}:${user.name}:${user.home}:/bin/bash`);
    await addLine(join(this.root, 'etc/group'), String(user.gid), `${user.name}:x:${user.gid}:`, 2);
    return user;
  }
}

/** PATH inside the sandbox; bwrap itself is looked up on it too. */
const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Whether an executable `name` is on SANDBOX_PATH of the simulator's machine. */
async function onPath(name: string): Promise<boolean> {
  for (const dir of SANDBOX_PATH.split(':')) {
    if (
      dir &&
      (await access(join(dir, name), constants.X_OK).then(
        () => true,
        () => false,
      ))
    )
      return true;
  }
  return false;
}

/** The session user as the simulator's machine knows it (uid/gid are kept; home is /root or /home/<name>). */
async function lookupUser(name: string): Promise<SandboxUser> {
  const me = userInfo();
  if (name === me.username) return { name, uid: me.uid, gid: me.gid, home: me.uid === 0 ? '/root' : `/home/${name}` };
  const line = (await readFile('/etc/passwd', 'utf8')).split('\n').find((l) => l.split(':')[0] === name);
  if (!line) throw new Error(`no local user "${name}"`);
  const [, , uid, gid] = line.split(':');
  return { name, uid: Number(uid), gid: Number(gid), home: Number(uid) === 0 ? '/root' : `/home/${name}` };
}

/** Appends `line` to a passwd-style file unless an entry's field `field` (0: name, 2: id) already is `key`. */
async function addLine(file: string, key: string, line: string, field = 0): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (text.split('\n').some((l) => l.split(':')[field] === key)) return;
  await writeFileAtomic(file, `${text}${text && !text.endsWith('\n') ? '\n' : ''}${line}\n`, 0o644);
}

function sandboxEnv(user: SandboxUser): Record<string, string> {
  return {
    PATH: SANDBOX_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    LANG: 'C.UTF-8',
    TERM: 'xterm-256color',
    SHELL: '/bin/bash',
    EDGEPLANE_SESSION: '1',
  };
}
