import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostBinaries, sharedLibraries, TPM2_COMMANDS, TPM2_TCTIS } from './host-binaries.js';
import { which } from './tools.js';

const run = promisify(execFile);

describe('sharedLibraries', () => {
  it('lists the libraries and the dynamic loader of a dynamically linked program, without the vDSO', async () => {
    const libs = await sharedLibraries('/bin/ls');
    expect(libs.some((l) => /\/libc\.so\.6$/.test(l))).toBe(true);
    expect(libs).toContain('/lib64/ld-linux-x86-64.so.2');
    expect(libs.every((l) => l.startsWith('/'))).toBe(true);
    expect(libs.join(' ')).not.toContain('vdso');
  });

  it('lists nothing for a static program (busybox-static)', async () => {
    expect(await sharedLibraries(await which('busybox'))).toEqual([]);
  });
});

describe('HostBinaries', () => {
  let tree: string;
  beforeAll(async () => {
    tree = await mkdtemp(join(tmpdir(), 'ep-hostbin-'));
  });
  afterAll(() => rm(tree, { recursive: true, force: true }));

  it('copies a program with every library it needs, at the same paths, so it runs from the tree alone', async () => {
    const bins = new HostBinaries(tree);
    await bins.add('/bin/ls', 'bin/ls');
    await bins.add('/bin/cat', 'bin/cat'); // shares libc with ls: copied once, no error
    for (const lib of await sharedLibraries('/bin/ls')) await access(join(tree, lib));
    // Run the copied ls through the copied loader with only the tree's library directories on the path;
    // --list shows where each library resolved (the loader would fall back to the host's otherwise).
    const loader = join(tree, 'lib64/ld-linux-x86-64.so.2');
    const libPath = [...new Set((await sharedLibraries('/bin/ls')).map((l) => join(tree, dirname(l))))].join(':');
    const list = (await run(loader, ['--library-path', libPath, '--list', join(tree, 'bin/ls')])).stdout;
    const resolved = list.split('\n').filter((l) => l.includes('=>'));
    expect(resolved.length).toBeGreaterThan(0);
    for (const line of resolved) expect(line).toContain(`=> ${tree}/`);
    const { stdout } = await run(loader, ['--library-path', libPath, join(tree, 'bin/ls'), '/']);
    expect(stdout.split('\n')).toContain('proc');
    // The loader in the tree is a file, not the host's symlink (the image has no /lib/x86_64-linux-gnu otherwise).
    await expect(
      run('test', ['-f', join(tree, 'lib64/ld-linux-x86-64.so.2'), '-a', '!', '-L', join(tree, 'lib64/ld-linux-x86-64.so.2')]),
    ).resolves.toBeDefined();
  });
});

describe('HostBinaries.addTpm2Tools', () => {
  let tree: string;
  beforeAll(async () => {
    tree = await mkdtemp(join(tmpdir(), 'ep-hostbin-tpm-'));
    const bins = new HostBinaries(tree);
    await bins.add('/bin/sh', 'bin/sh');
    await bins.addTpm2Tools();
  });
  afterAll(() => rm(tree, { recursive: true, force: true }));

  it('links every tpm2-tools command the agent runs to the multi-call tpm2, and copies the device TCTI beside tctildr', async () => {
    const source = await readFile(new URL('../../agent/src/identity/tpm-key.ts', import.meta.url), 'utf8');
    const used = [...new Set(source.match(/'tpm2_[a-z]+'/g)?.map((s) => s.slice(1, -1)))].sort();
    expect(used.length).toBeGreaterThan(5);
    expect([...TPM2_COMMANDS].sort()).toEqual(expect.arrayContaining(used));
    await access(join(tree, 'bin/tpm2'));
    for (const command of TPM2_COMMANDS) expect(await readlink(join(tree, 'bin', command))).toBe('tpm2');
    const tctildr = (await sharedLibraries(await which('tpm2'))).find((l) => l.includes('libtss2-tctildr'));
    expect(tctildr).toBeDefined();
    for (const lib of [tctildr!, ...TPM2_TCTIS.map((t) => join(dirname(tctildr!), t))]) await access(join(tree, lib));
  });

  // chroot needs root (the lab machines run as root); a tree missing the TCTI fails here with "Could not dlopen".
  it.skipIf(process.getuid?.() !== 0)('tpm2_getcap runs inside the tree alone and loads the device TCTI (chroot)', async () => {
    const err = await run('chroot', [tree, '/bin/tpm2_getcap', '--tcti=device:/dev/no-such-tpm', 'properties-fixed']).catch(
      (e: { stderr: string; code: number }) => e,
    );
    expect(err).toMatchObject({ code: 1 });
    // tpm2-tss 3.2's device TCTI ran (tcti-device.c) and tried the device path it was given.
    expect((err as { stderr: string }).stderr).toContain('Failed to open specified TCTI device file /dev/no-such-tpm');
  });
});
