import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peHasSignature, slotKernelSigned } from './kernel-signature.js';
import { peKernelHead } from './testing-pe.js';

describe('kernel signature', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-ksig-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('tells a PE32+ image with a certificate table from one without, and from what is no PE image', () => {
    expect(peHasSignature(peKernelHead(true))).toBe(true);
    expect(peHasSignature(peKernelHead(false))).toBe(false);
    expect(peHasSignature(Buffer.from('#!/bin/sh\necho not a kernel\n'))).toBe(false);
    expect(peHasSignature(peKernelHead(true).subarray(0, 100))).toBe(false); // truncated headers: no answer from bytes not there
    const pe32 = peKernelHead(true);
    pe32.writeUInt16LE(0x10b, 0x40 + 24); // a 32-bit PE: not an x86-64 kernel
    expect(peHasSignature(pe32)).toBe(false);
  });

  async function tree(name: string, files: Record<string, Buffer | { link: string }>): Promise<string> {
    const root = join(dir, name);
    await mkdir(join(root, 'boot'), { recursive: true });
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(root, path, '..'), { recursive: true });
      if (Buffer.isBuffer(content)) await writeFile(join(root, path), content);
      else await symlink(content.link, join(root, path));
    }
    return root;
  }

  it("reads the slot's /boot/vmlinuz, following links inside the tree as GRUB does", async () => {
    expect(await slotKernelSigned(await tree('plain', { 'boot/vmlinuz': peKernelHead(true) }))).toBe(true);
    expect(await slotKernelSigned(await tree('unsigned', { 'boot/vmlinuz': peKernelHead(false) }))).toBe(false);
    // Debian: a relative link to vmlinuz-<release>; some trees use an absolute one.
    expect(
      await slotKernelSigned(await tree('debian', { 'boot/vmlinuz-6.1.0-57-amd64': peKernelHead(true), 'boot/vmlinuz': { link: 'vmlinuz-6.1.0-57-amd64' } })),
    ).toBe(true);
    expect(await slotKernelSigned(await tree('absolute', { 'boot/k': peKernelHead(false), 'boot/vmlinuz': { link: '/boot/k' } }))).toBe(false);
    expect(await slotKernelSigned(await tree('none', {}))).toBeUndefined();
  });

  it('never reads outside the tree: links that leave it, or loop, give no answer', async () => {
    const outside = join(dir, 'outside-kernel');
    await writeFile(outside, peKernelHead(true));
    expect(await slotKernelSigned(await tree('up', { 'boot/vmlinuz': { link: '../../outside-kernel' } }))).toBeUndefined();
    expect(await slotKernelSigned(await tree('abs-out', { 'boot/vmlinuz': { link: outside } }))).toBeUndefined();
    expect(await slotKernelSigned(await tree('loop', { 'boot/vmlinuz': { link: 'vmlinuz' } }))).toBeUndefined();
    // A directory on the way that is a link out of the tree.
    const escaped = join(dir, 'escaped');
    await mkdir(join(escaped, 'boot'), { recursive: true });
    await symlink(join(dir), join(escaped, 'boot', 'dir'));
    await symlink('dir/outside-kernel', join(escaped, 'boot', 'vmlinuz'));
    expect(await slotKernelSigned(escaped)).toBeUndefined();
  });
});
