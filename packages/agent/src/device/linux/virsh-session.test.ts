import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirshError, VirshSession } from './virsh-session.js';

const sessions: VirshSession[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
const session = (uri: string, options?: ConstructorParameters<typeof VirshSession>[1]) => {
  const s = new VirshSession(uri, options);
  sessions.push(s);
  return s;
};

describe('VirshSession', () => {
  it('keeps one connection: state made by one command is seen by the next', async () => {
    const s = session('test:///default');
    await s.run('pool-define-as', 'p9', 'dir', '--target', '/p9');
    expect(await s.run('pool-list', '--all', '--name')).toContain('p9');
    // A fresh session is a fresh test-driver connection: p9 is not there.
    expect(await session('test:///default').run('pool-list', '--all', '--name')).not.toContain('p9');
  });

  it('fails a command whose connection cannot be opened, with virsh’s reason', async () => {
    const s = session('test:///nonexistent/edgeplane.xml');
    await expect(s.run('list')).rejects.toThrow(/exited/);
  });

  it('refuses arguments it cannot pass safely', () => {
    expect(() => session('test:///default').run('dominfo', "a'b")).toThrow(VirshError);
  });

  it('times out a hung command and starts a new virsh for the next one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virsh-hang-'));
    dirs.push(dir);
    const bin = join(dir, 'virsh');
    await writeFile(bin, '#!/bin/sh\nexec sleep 30\n');
    await chmod(bin, 0o755);
    const s = session('test:///default', { binary: bin, timeoutMs: 200 });
    const [a, b] = await Promise.allSettled([s.run('list'), s.run('version')]);
    expect(a).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: 'virsh list timed out' }) });
    expect(b).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: 'virsh version timed out' }) });
  });
});
