import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SessionProcess } from '../processes.js';
import { SimDevice } from './sim-device.js';

/** Output and exit of a session process. */
function collect(p: SessionProcess): { out: () => string; exit: Promise<number | null> } {
  let out = '';
  p.onData((_s, d) => {
    out += d.toString();
  });
  return { out: () => out, exit: new Promise((r) => p.onExit((code) => r(code))) };
}

async function until(what: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("SimDevice: remote shells and commands run in the simulator's sandbox", () => {
  let root: string;
  let hostDir: string;
  let secret: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'sim-sandbox-root-'));
    hostDir = await mkdtemp(join(tmpdir(), 'sim-sandbox-host-'));
    secret = join(hostDir, 'simulator-secret.txt');
    await writeFile(secret, 'the simulator machine only\n');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(hostDir, { recursive: true, force: true });
  });

  it("a command sees the device's root as /, not the simulator machine's files; what it writes lands under the device root", async () => {
    const device = new SimDevice({ root, hostname: 'sim-box' });
    const p = collect(
      await device.processes.spawn([
        'sh',
        '-c',
        `cat ${secret}; test -e ${hostDir} && echo host-dir-visible; echo written-inside > /root/note.txt; hostname; touch /usr/x 2>/dev/null || echo usr-read-only`,
      ]),
    );
    expect(await p.exit).toBe(0);
    expect(p.out()).not.toContain('the simulator machine only');
    expect(p.out()).toMatch(/No such file or directory/);
    expect(p.out()).not.toContain('host-dir-visible');
    expect(p.out()).toContain('sim-box');
    expect(p.out()).toContain('usr-read-only');
    expect(await readFile(join(root, 'root/note.txt'), 'utf8')).toBe('written-inside\n');
    expect(device.sessionNotice('root')).toMatch(/bubblewrap sandbox .* as root$/);
  });

  it('a command that cannot start exits 127; stdin reaches a command', async () => {
    const device = new SimDevice({ root });
    expect(await collect(await device.processes.spawn(['no-such-command-xyz'])).exit).toBe(127);
    const cat = await device.processes.spawn(['cat']);
    const c = collect(cat);
    cat.write(Buffer.from('line one\n'), () => {});
    await until(() => c.out().includes('line one'));
    cat.eof();
    expect(await c.exit).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)('runs as another local user inside the sandbox, known to the device from its own /etc/passwd', async () => {
    const device = new SimDevice({ root });
    const p = collect(await device.processes.spawn(['sh', '-c', 'id -un; touch /root/not-mine 2>/dev/null || echo refused'], { user: 'nobody' }));
    expect(await p.exit).toBe(0);
    expect(p.out()).toBe('nobody\nrefused\n');
    expect(await readFile(join(root, 'etc/passwd'), 'utf8')).toMatch(/^nobody:x:65534:/m);
    expect(existsSync(join(root, 'root/not-mine'))).toBe(false);
  });

  it('a shell gets a terminal inside the sandbox and cannot read the simulator machine', async () => {
    const device = new SimDevice({ root });
    const shell = await device.processes.shell({ cols: 100, rows: 30 });
    const s = collect(shell);
    shell.write(Buffer.from(`cat ${secret}; tty; stty size; echo from-shell > /tmp/shell-note; echo done-$((6*7))\n`), () => {});
    await until(() => s.out().includes('done-42'));
    expect(s.out()).not.toContain('the simulator machine only');
    expect(s.out()).toMatch(/\/dev\/pts\/\d+/);
    expect(s.out()).toMatch(/\b30 100\b/);
    shell.write(Buffer.from('exit 3\n'), () => {});
    expect(await s.exit).toBe(3);
    expect(existsSync(join(root, 'tmp/shell-note'))).toBe(true);
  });
});
