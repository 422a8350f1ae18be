import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsManager } from '../../managers/os/os.manager.js';
import { writeOsImage } from '../../oci/index.js';
import { runTool } from '../run-tool.js';
import { LinuxDevice } from './linux-device.js';
import type { LinuxSlots } from './linux-slots.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ep-linux-slots-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('LinuxDevice A/B slots (file-backed "partitions")', () => {
  it('stages an OS image as an ext4 filesystem in the passive slot and reads it back without mounting', async () => {
    const root = join(work, 'root');
    await mkdir(join(root, 'proc'), { recursive: true });
    await writeFile(join(root, 'proc/cmdline'), 'BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=root-a ro edgeplane.slot=A quiet\n');
    const targets = { A: join(work, 'root-a.img'), B: join(work, 'root-b.img') };
    const device = new LinuxDevice({ root, slots: { targets, imageSizeBytes: 16 * 1024 ** 2 } });
    const layout = join(work, 'layout');
    const image = await writeOsImage({ layoutDir: layout, tag: '3.0.0', name: 'Edgeplane OS', version: '3.0.0' });

    const manager = new OsManager(device, { dataDir: join(work, 'data') });
    const ctx = {
      device,
      dataDir: join(work, 'data'),
      log: pino({ level: 'silent' }),
      emitEvent: () => {},
      reportProgress: () => {},
      signal: new AbortController().signal,
    };
    await manager.prepare({ image: `oci:${layout}:3.0.0`, digest: image.digest }, ctx);

    expect(await (device.boot as LinuxSlots).bootedSlot()).toBe('A');
    expect(await (device.boot as LinuxSlots).readSlot('B')).toMatchObject({ digest: image.digest, name: 'Edgeplane OS', version: '3.0.0' });
    expect(await (device.boot as LinuxSlots).readSlot('A')).toBeUndefined();
    const { stdout } = await runTool('debugfs', ['-R', 'cat /etc/os-release', targets.B]);
    expect(stdout).toContain('VERSION_ID=3.0.0');
    const { stdout: label } = await runTool('e2label', [targets.B]);
    expect(label.trim()).toBe('root-b');
    expect(await manager.status()).toMatchObject({ phase: 'Staged', bootedSlot: 'A', slots: { B: { digest: image.digest } } });
  });
});

describe('LinuxSlots: squashfs slots (an image whose image.json asks for them)', () => {
  const tree = async (name: string, version: string) => {
    const dir = join(work, `tree-${name}-${version}`);
    await mkdir(join(dir, 'usr/lib/edgeplane'), { recursive: true });
    await mkdir(join(dir, 'etc'), { recursive: true });
    await writeFile(join(dir, 'usr/lib/edgeplane/image.json'), `${JSON.stringify({ name, version, slotFilesystem: 'squashfs' })}\n`);
    await writeFile(join(dir, 'etc/os-release'), `VERSION_ID=${version}\n`);
    // Something to compress: 2 MiB of text.
    await writeFile(join(dir, 'etc/big.txt'), 'edgeplane '.repeat(200_000));
    return dir;
  };
  const meta = (digest: string, version: string) => ({
    digest,
    image: `registry.lan/os:${version}`,
    name: 'Edgeplane OS',
    version,
    writtenAt: new Date(0).toISOString(),
  });

  it('writes the tree as a squashfs with its record, which readSlot reads back; a rewrite replaces both', async () => {
    const { LinuxSlots } = await import('./linux-slots.js');
    const targets = { A: join(work, 'sq-a.img'), B: join(work, 'sq-b.img') };
    const slots = new LinuxSlots({ root: work, targets });
    await slots.writeSlot('B', await tree('Edgeplane OS', '4.0.0'), meta('sha256:aaaa', '4.0.0'));
    expect((await readFile(targets.B)).subarray(0, 4).toString()).toBe('hsqs');
    expect(await slots.readSlot('B')).toMatchObject({ digest: 'sha256:aaaa', version: '4.0.0' });
    const { stdout } = await runTool('unsquashfs', ['-cat', targets.B, 'etc/os-release']);
    expect(stdout).toBe('VERSION_ID=4.0.0\n');
    // Compressed: 2 MiB of repeated text takes a few KiB.
    expect((await stat(targets.B)).size).toBeLessThan(256 * 1024);
    expect(existsSync(`${targets.B}.partial`)).toBe(false);

    await slots.writeSlot('B', await tree('Edgeplane OS', '4.1.0'), meta('sha256:bbbb', '4.1.0'));
    expect(await slots.readSlot('B')).toMatchObject({ digest: 'sha256:bbbb', version: '4.1.0' });
    expect(await slots.readSlot('A')).toBeUndefined();
  });

  it('on a block-device-like target: refuses an image larger than the slot and leaves the slot without a superblock', async () => {
    const { copySlotImage } = await import('../../oci/delta/slot-image.js');
    const image = join(work, 'big.squashfs');
    await runTool('mksquashfs', [await tree('Edgeplane OS', '5.0.0'), image, '-noappend', '-quiet', '-no-progress']);
    const small = join(work, 'small-slot.img');
    await writeFile(small, Buffer.alloc(4096));
    const err = await copySlotImage(image, small).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^ImageTooLarge: the slot image is \d+ MiB; the slot has 0 MiB$/);
    expect(await readFile(small)).toEqual(Buffer.alloc(4096));
  });

  it('a write cut off before the superblock leaves a slot readSlot reports as empty, whatever else was written', async () => {
    const { LinuxSlots } = await import('./linux-slots.js');
    const { copySlotImage } = await import('../../oci/delta/slot-image.js');
    const target = join(work, 'cut-b.img');
    const slots = new LinuxSlots({ root: work, targets: { B: target } });
    const dir = await tree('Edgeplane OS', '6.0.0');
    // Incompressible: the image is well beyond the 64 KiB written last.
    await writeFile(join(dir, 'etc/random.bin'), randomBytes(512 * 1024));
    await slots.writeSlot('B', dir, meta('sha256:cccc', '6.0.0'));
    const whole = await readFile(target);
    // A partition the size of the image, zeroed as the writer does first; everything but the first
    // 64 KiB copied in: what a power cut between copySlotImage's two fsyncs leaves.
    const part = join(work, 'cut-part.img');
    await writeFile(part, Buffer.alloc(whole.length));
    await copySlotImage(target, part);
    const cut = await readFile(part);
    cut.fill(0, 0, 64 * 1024);
    await writeFile(part, cut);
    const onPart = new LinuxSlots({ root: work, targets: { B: part } });
    expect(await onPart.readSlot('B')).toBeUndefined();
    // The complete copy reads as the image.
    await copySlotImage(target, part);
    expect(await onPart.readSlot('B')).toMatchObject({ digest: 'sha256:cccc' });
    expect(await readFile(part)).toEqual(whole);
  });
});
