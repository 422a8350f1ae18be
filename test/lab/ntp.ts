import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The lab's time server: chronyd (Debian chrony) serving NTP on the host's loopback, UDP 123. QEMU's
 * user networking forwards what the guest sends to 10.0.2.2 to the host's loopback, so a guest told
 * "NTP server 10.0.2.2" syncs to this one. It serves its own clock (`local stratum 8`: no upstream
 * needed in CI) and never sets the host's (`-x`). Port 123 is privileged: it needs root.
 */
export interface NtpServer {
  stop(): Promise<void>;
  /** chronyd's own log (stderr), for a failing test's message. */
  log(): string;
}

/** Why the lab cannot run its NTP server here, or undefined when it can. */
export function ntpUnavailable(): string | undefined {
  if (spawnSync('sh', ['-c', 'command -v chronyd || test -x /usr/sbin/chronyd']).status !== 0) return 'chronyd is not installed (Debian: chrony)';
  if (process.getuid?.() !== 0) return 'serving NTP on UDP 123 needs root';
  return undefined;
}

export async function startNtpServer(): Promise<NtpServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ep-lab-ntp-'));
  const conf = join(dir, 'chrony.conf');
  writeFileSync(
    conf,
    [
      'port 123',
      'bindaddress 127.0.0.1',
      'allow 127.0.0.1',
      'local stratum 8',
      // No command socket: nothing else on the host talks to this chronyd.
      'cmdport 0',
      `pidfile ${join(dir, 'chronyd.pid')}`,
      '',
    ].join('\n'),
  );
  // -d: foreground, log to stderr; -x: never touch the host's clock; -u root: no _chrony user needed.
  const child: ChildProcess = spawn('chronyd', ['-f', conf, '-d', '-x', '-u', 'root'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 15_000;
  while (!(await answers())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`chronyd does not answer NTP on 127.0.0.1:123: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    log: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether an NTP client request (mode 3) to 127.0.0.1:123 gets a server reply (mode 4) with a stratum below 16. */
function answers(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.on('message', (m) => done(m.length >= 48 && (m[0] & 7) === 4 && m[1] > 0 && m[1] < 16));
    socket.on('error', () => done(false));
    const request = Buffer.alloc(48);
    request[0] = (4 << 3) | 3; // version 4, client
    socket.send(request, 123, '127.0.0.1');
  });
}
