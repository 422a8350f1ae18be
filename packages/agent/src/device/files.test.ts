import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RootedFiles } from './files.js';

describe('device files (RootedFiles)', () => {
  let base: string;
  let root: string;
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'ep-files-'));
    root = join(base, 'device');
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('reads, writes atomically, stats, lists and removes by device path under the root', async () => {
    const files = new RootedFiles(root);
    expect(await files.readText('/etc/rancher/k3s/config.yaml')).toBeUndefined();
    expect(await files.stat('/etc/rancher')).toBeUndefined();
    expect(await files.list('/etc')).toBeUndefined();
    await files.writeAtomic('/etc/rancher/k3s/config.yaml', 'token: x\n', 0o600);
    expect(await readFile(join(root, 'etc/rancher/k3s/config.yaml'), 'utf8')).toBe('token: x\n');
    expect(await files.readText('etc/rancher/k3s/config.yaml')).toBe('token: x\n');
    expect(await files.stat('/etc/rancher/k3s/config.yaml')).toEqual({ type: 'file', size: 9, mode: 0o600 });
    expect((await files.stat('/etc/rancher'))?.type).toBe('directory');
    await files.writeAtomic('/etc/b', Buffer.from('bytes'));
    expect(await files.list('/etc')).toEqual(['b', 'rancher']);
    expect(await files.list('/etc/b')).toBeUndefined(); // a file, not a directory
    expect((await files.read('/etc/b'))?.toString()).toBe('bytes');
    await files.remove('/etc/b');
    await files.remove('/etc/b'); // already gone: no error
    await expect(files.remove('/etc/rancher')).rejects.toThrow();
    await files.remove('/etc/rancher', { recursive: true });
    expect(await files.list('/etc')).toEqual([]);
  });

  it('refuses a path that leaves the root, and does not touch the file outside', async () => {
    await writeFile(join(base, 'outside.txt'), 'keep');
    const files = new RootedFiles(root);
    for (const path of ['../outside.txt', '/../outside.txt', 'etc/../../outside.txt']) {
      await expect(files.readText(path)).rejects.toThrow(/leaves the device's root/);
      await expect(files.writeAtomic(path, 'changed')).rejects.toThrow(/leaves the device's root/);
      await expect(files.remove(path)).rejects.toThrow(/leaves the device's root/);
    }
    expect(await readFile(join(base, 'outside.txt'), 'utf8')).toBe('keep');
  });
});
