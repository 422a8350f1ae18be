import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/**
 * Starts libvirt's QEMU daemon for the tests that use a real hypervisor (qemu:///system), when it is
 * installed but not running: `virtlogd -d` (domain logs), then `libvirtd -d`. Neither needs systemd
 * (CI runs without it). Returns a stop function that ends only what this call started, so a
 * developer's own libvirtd is left alone. Not root, or not installed: nothing happens, and the tests
 * that need the daemon say in their output why they skip.
 */
export async function startLibvirtd(log: (line: string) => void = console.warn): Promise<() => void> {
  const started: string[] = [];
  const stop = () => {
    for (const pidFile of started.reverse()) {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    }
  };
  if (answers()) return stop;
  if (process.getuid?.() !== 0 || !existsSync('/usr/sbin/libvirtd')) return stop;
  for (const [daemon, pidFile] of [
    ['virtlogd', '/run/virtlogd.pid'],
    ['libvirtd', '/run/libvirtd.pid'],
  ] as const) {
    if (running(pidFile)) continue;
    const r = spawnSync(`/usr/sbin/${daemon}`, ['-d'], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) {
      log(`[libvirtd] could not start ${daemon}: ${(r.stderr || r.error?.message || '').trim()}`);
      stop();
      return () => {};
    }
    started.push(pidFile);
  }
  // libvirtd daemonizes before its socket accepts connections: wait until virsh gets an answer.
  const deadline = Date.now() + 30_000;
  while (!answers()) {
    if (Date.now() > deadline) {
      log('[libvirtd] started, but qemu:///system did not answer within 30 s');
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  log(`[libvirtd] started ${started.length === 2 ? 'virtlogd and libvirtd' : 'libvirtd'} for the real-hypervisor tests`);
  return stop;
}

function answers(): boolean {
  return spawnSync('virsh', ['-q', '-c', 'qemu:///system', 'version'], { encoding: 'utf8', timeout: 10_000 }).status === 0;
}

/** Whether the daemon of a pid file is alive (a stale file after a crash does not count). */
function running(pidFile: string): boolean {
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
