import { userInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { SessionProcess } from '../processes.js';
import { LinuxDevice } from './linux-device.js';

function collect(p: SessionProcess): { out: () => string; exit: Promise<number | null> } {
  let out = '';
  p.onData((_s, d) => {
    out += d.toString();
  });
  return { out: () => out, exit: new Promise((r) => p.onExit((code) => r(code))) };
}

describe('LinuxDevice processes (the real machine)', () => {
  const device = new LinuxDevice();

  it('runs a command with a clean environment, as the agent user; 127 when it cannot start', async () => {
    process.env.EDGEPLANE_TEST_SECRET = 'must-not-leak';
    try {
      const p = collect(await device.processes.spawn(['sh', '-c', 'id -un; echo "secret=$EDGEPLANE_TEST_SECRET"; echo "session=$EDGEPLANE_SESSION"']));
      expect(await p.exit).toBe(0);
      expect(p.out()).toBe(`${userInfo().username}\nsecret=\nsession=1\n`);
    } finally {
      delete process.env.EDGEPLANE_TEST_SECRET;
    }
    expect(await collect(await device.processes.spawn(['no-such-command-xyz'])).exit).toBe(127);
  });

  it.skipIf(process.getuid?.() !== 0)('switches to another local user with runuser (agent as root)', async () => {
    const p = collect(await device.processes.spawn(['id', '-un'], { user: 'nobody' }));
    expect(await p.exit).toBe(0);
    expect(p.out()).toBe('nobody\n');
  });

  it('a shell runs on a terminal of this machine with the size asked for', async () => {
    const shell = await device.processes.shell({ cols: 90, rows: 20 });
    const s = collect(shell);
    shell.write(Buffer.from('stty size; exit 4\n'), () => {});
    expect(await s.exit).toBe(4);
    expect(s.out()).toMatch(/\b20 90\b/);
  });
});
