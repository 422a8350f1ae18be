import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peHasSignature, slotKernelSigned } from './kernel-signature.js';

/** The headers of a PE32+ image (an EFI-stub kernel), with or without a certificate table. */
function peHead(signed: boolean): Buffer {
  const b = Buffer.alloc(512);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x40, 0x3c); // e_lfanew
  b.write('PE\0\0', 0x40, 'latin1');
  const optional = 0x40 + 24;
  b.writeUInt16LE(0x20b, optional); // PE32+
  b.writeUInt32LE(16, optional + 108); // NumberOfRvaAndSizes
  if (signed) {
    b.writeUInt32LE(0x100, optional + 112 + 4 * 8); // certificate table: file offset
    b.writeUInt32LE(0x48, optional + 112 + 4 * 8 + 4); // and size
  }
  return b;
}

describe('kernel signature', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-ksig-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('tells a PE32+ image with a certificate table from one without, and from what is no PE image', () => {
    expect(peHasSignature(peHead(true))).toBe(true);
    expect(peHasSignature(peHead(false))).toBe(false);
    expect(peHasSignature(Buffer.from('#!/bin/sh\necho not a kernel\n'))).toBe(false);
    expect(peHasSignature(peHead(true).subarray(0, 100))).toBe(false); // truncated headers: no answer from bytes not there
    const pe32 = peHead(true);
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
    expect(await slotKernelSigned(await tree('plain', { 'boot/vmlinuz': peHead(true) }))).toBe(true);
    expect(await slotKernelSigned(await tree('unsigned', { 'boot/vmlinuz': peHead(false) }))).toBe(false);
    // Debian: a relative link to vmlinuz-<release>; some trees use an absolute one.
    expect(
      await slotKernelSigned(await tree('debian', { 'boot/vmlinuz-6.1.0-57-amd64': peHead(true), 'boot/vmlinuz': { link: 'vmlinuz-6.1.0-57-amd64' } })),
    ).toBe(true);
    expect(await slotKernelSigned(await tree('absolute', { 'boot/k': peHead(false), 'boot/vmlinuz': { link: '/boot/k' } }))).toBe(false);
    expect(await slotKernelSigned(await tree('none', {}))).toBeUndefined();
  });

  it('never reads outside the tree: links that leave it, or loop, give no answer', async () => {
    const outside = join(dir, 'outside-kernel');
    await writeFile(outside, peHead(true));
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
