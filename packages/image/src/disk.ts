import { spawn } from 'node:child_process';
import { open, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DiskLayout, MiB, type Partition, sfdiskScript } from './disk-layout.js';
import { ImageBuildError, runTool, which } from './tools.js';

/**
 * Writes a GPT disk image file from partition images, without loop devices or root: sfdisk on the
 * file, then each partition image copied in at its offset (holes stay sparse).
 */
export async function writeDisk(output: string, layout: DiskLayout, images: Partial<Record<Partition['name'], string>>): Promise<void> {
  await which('sfdisk');
  await rm(output, { force: true });
  await (await open(output, 'w')).close();
  await truncate(output, layout.sizeMiB * MiB);
  await sfdisk(output, sfdiskScript(layout));
  for (const p of layout.partitions) {
    const image = images[p.name];
    if (image) await copyInto(image, output, p);
  }
}

function sfdisk(disk: string, script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', disk], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new ImageBuildError('ImageBuildFailed', `sfdisk failed: ${stderr.trim()}`))));
    child.stdin.end(script);
  });
}

/** Copies a partition image into the disk at the partition's offset; refuses one larger than the partition. */
async function copyInto(image: string, disk: string, p: Partition): Promise<void> {
  const src = await open(image, 'r');
  const dst = await open(disk, 'r+');
  try {
    const { size } = await src.stat();
    if (size > p.sizeMiB * MiB)
      throw new ImageBuildError('ImageTooLarge', `${p.name} image is ${Math.ceil(size / MiB)} MiB; the partition has ${p.sizeMiB} MiB`);
    const buf = Buffer.alloc(4 * MiB);
    const zero = Buffer.alloc(buf.length);
    for (let off = 0; off < size; off += buf.length) {
      const { bytesRead } = await src.read(buf, 0, buf.length, off);
      // Leave all-zero blocks as holes: the disk stays sparse.
      if (buf.subarray(0, bytesRead).equals(zero.subarray(0, bytesRead))) continue;
      await dst.write(buf, 0, bytesRead, p.startMiB * MiB + off);
    }
    await dst.sync();
  } finally {
    await src.close();
    await dst.close();
  }
}

/**
 * The EFI system partition image: a standalone GRUB EFI binary at the removable-media path
 * (EFI/BOOT/BOOTX64.EFI, so no NVRAM boot entry is needed), grub.cfg and the grubenv.
 */
export async function writeEsp(output: string, sizeMiB: number, workDir: string, grubCfg: string, grubenv: string): Promise<void> {
  for (const tool of ['grub-mkimage', 'mkfs.vfat', 'mmd', 'mcopy']) await which(tool);
  const efi = join(workDir, 'BOOTX64.EFI');
  await runTool('grub-mkimage', ['-O', 'x86_64-efi', '-p', '/EFI/edgeplane', '-o', efi, ...GRUB_MODULES], { timeoutMs: 120_000 }).catch((err: Error) => {
    throw new ImageBuildError('ImageToolMissing', `grub-mkimage could not build the EFI loader (Debian: apt-get install grub-efi-amd64-bin): ${err.message}`);
  });
  const cfg = join(workDir, 'grub.cfg');
  await writeFile(cfg, grubCfg);
  await rm(output, { force: true });
  await runTool('mkfs.vfat', ['-C', '-F', '32', '-n', 'EDGEPLANE', output, String(sizeMiB * 1024)]);
  await runTool('mmd', ['-i', output, '::/EFI', '::/EFI/BOOT', '::/EFI/edgeplane']);
  await runTool('mcopy', ['-i', output, efi, '::/EFI/BOOT/BOOTX64.EFI']);
  await runTool('mcopy', ['-i', output, cfg, '::/EFI/edgeplane/grub.cfg']);
  await runTool('mcopy', ['-i', output, grubenv, '::/EFI/edgeplane/grubenv']);
}

/** GRUB modules built into the EFI binary: GPT, FAT (ESP) and ext4 (slots), the A/B logic's commands, serial console. */
export const GRUB_MODULES = [
  'part_gpt',
  'fat',
  'ext2',
  'normal',
  'linux',
  'configfile',
  'loadenv',
  'echo',
  'test',
  'regexp',
  'search',
  'serial',
  'terminal',
  'reboot',
  'gzio',
  'all_video',
];
