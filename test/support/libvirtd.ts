import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvmBoots } from '../lab/qemu.js';

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
    // Another test run on this machine may have found the daemons running (ours) and still drive
    // them: killing virtlogd under its running guests cuts their serial console logs, and killing
    // libvirtd its virsh sessions. They are left running while a domain runs or a live process
    // holds the qemu:///system lock (lockQemuSystem); our own test workers are gone by now.
    if (started.length && inUse()) {
      log('[libvirtd] left virtlogd and libvirtd running: another test run still uses qemu:///system');
      return;
    }
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
    // At the default priority even from a niced test run: every guest is a child of libvirtd and
    // inherits its niceness, and an emulated guest at nice 10 next to other work boots several times slower.
    const nice = getPriority();
    const [cmd, args] = nice > 0 ? ['nice', ['-n', String(-nice), `/usr/sbin/${daemon}`, '-d']] : [`/usr/sbin/${daemon}`, ['-d']];
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
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

/** A domain runs on qemu:///system, or a live process holds the real-hypervisor tests' lock. */
function inUse(): boolean {
  const domains = spawnSync('virsh', ['-q', '-c', 'qemu:///system', 'list', '--name'], { encoding: 'utf8', timeout: 10_000 });
  if (domains.status === 0 && domains.stdout.trim() !== '') return true;
  const holder = existsSync(LOCK_FILE) ? Number(readFileSync(LOCK_FILE, 'utf8').trim() || 0) : 0;
  if (!(holder > 0)) return false;
  try {
    process.kill(holder, 0);
    return true;
  } catch {
    return false;
  }
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

/** `virsh -q -c URI ...` with a deadline: whether it succeeded and what it printed. */
export function virsh(uri: string, ...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/**
 * Whether real QEMU domains can run at `uri` (the tests that need a real hypervisor skip with the
 * reason otherwise), and with KVM or TCG: libvirt may offer KVM where KVM cannot run a guest (nested,
 * paravirtual), so KVM only when the lab's probe boots the firmware under it.
 */
export function probeQemuLibvirt(uri: string): { ok: true; kvm: boolean } | { ok: false; reason: string } {
  if (spawnSync('virsh', ['--version'], { encoding: 'utf8' }).error) return { ok: false, reason: 'virsh is not installed (libvirt-clients)' };
  const version = virsh(uri, 'version');
  if (!version.ok || !/QEMU/i.test(version.out)) {
    const apt = spawnSync('apt-cache', ['policy', 'libvirt-daemon-system', 'qemu-system-x86'], { encoding: 'utf8' }).stdout ?? '';
    const hint = /Installed: (?!\(none\))/.test(apt)
      ? ' (libvirt-daemon-system is installed: start libvirtd and virtlogd)'
      : /Candidate: (?!\(none\))/.test(apt)
        ? ' (apt-get install libvirt-daemon-system qemu-system-x86 would provide it)'
        : '';
    return { ok: false, reason: `no QEMU libvirt daemon answers at ${uri}: ${version.out.split('\n').pop() || 'no answer'}${hint}` };
  }
  const kvm = virsh(uri, 'domcapabilities', '--virttype', 'kvm').ok && kvmBoots();
  // A daemon that answers may still be unable to define domains (e.g. started by hand in a container
  // without systemd/D-Bus, where define hangs): try a tiny one with a deadline.
  const name = `ep-probe-${process.pid}`;
  const probeXml = join(tmpdir(), `${name}.xml`);
  writeFileSync(
    probeXml,
    `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`,
  );
  const defined = spawnSync('virsh', ['-q', '-c', uri, 'define', probeXml], { encoding: 'utf8', timeout: 15_000 });
  rmSync(probeXml, { force: true });
  if (defined.status !== 0)
    return {
      ok: false,
      reason: `libvirtd at ${uri} answers but cannot define a domain: ${defined.error ? 'define did not finish within 15 s' : (defined.stderr ?? '').trim()}`,
    };
  virsh(uri, 'undefine', name);
  return { ok: true, kvm };
}

const LOCK_FILE = join(tmpdir(), 'edgeplane-qemu-system.lock');

/**
 * One test file at a time drives this machine's qemu:///system: an appliance's virt manager removes
 * every Edgeplane domain (prefix `ep-`) and base volume its spec does not name, so two files running
 * at once (vitest runs 2 in parallel) would remove each other's VMs. Waits for the lock file (taking
 * over one whose holder is dead) and returns its release.
 */
export async function lockQemuSystem(timeoutMs: number): Promise<() => void> {
  const file = LOCK_FILE;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => {
        if (existsSync(file) && readFileSync(file, 'utf8') === String(process.pid)) rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(file, 'utf8').trim() || 0);
    let alive = holder > 0;
    try {
      if (alive) process.kill(holder, 0);
    } catch {
      alive = false;
    }
    if (!alive) rmSync(file, { force: true });
    else if (Date.now() > deadline) throw new Error(`qemu:///system is still in use by the tests of process ${holder} after ${timeoutMs / 1000} s`);
    else await new Promise((r) => setTimeout(r, 1000));
  }
}
