// biome-ignore-all lint/suspicious/noTemplateCurlyInString: GRUB script text, ${...} is GRUB syntax, not a JS placeholder
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GrubEnv } from '@edgeplane/agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_KERNEL_ARGS, grubConfig } from './build.js';
import { GRUB_MODULES, writeEsp } from './disk.js';
import { kernelSigned } from './kernel.js';
import { assertSignedGrub, readGrubImage, SIGNED_GRUB } from './secure-boot.js';

const run = promisify(execFile);

/** Files on a FAT image (mdir -/ -b: one path per line). */
async function espFiles(image: string): Promise<string[]> {
  const { stdout } = await run('mdir', ['-i', image, '-/', '-b', '::/']);
  return stdout
    .split('\n')
    .map((l) => l.trim().replace(/^::/, ''))
    .filter((l) => l && !l.endsWith('/'))
    .sort();
}

async function espRead(image: string, path: string, dir: string): Promise<Buffer> {
  const out = join(dir, 'read.bin');
  await rm(out, { force: true });
  await run('mcopy', ['-n', '-i', image, `::${path}`, out]);
  return readFile(out);
}

/** `sbverify --list`: who signed an EFI image. */
async function signers(file: string): Promise<string> {
  return (await run('sbverify', ['--list', file])).stdout;
}

describe('the Secure Boot chain on the ESP', () => {
  let dir: string;
  let grubenv: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-secure-boot-'));
    const env = new GrubEnv(join(dir, 'grubenv'));
    await env.set({ active_slot: 'A' });
    grubenv = env.file;
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("Debian's signed GRUB has every module the A/B logic uses built in, and reads /EFI/debian/grub.cfg", async () => {
    const grub = await readGrubImage(SIGNED_GRUB);
    // Under Secure Boot GRUB loads no module from disk: load_env/save_env (loadenv), regexp, serial, ... must be inside.
    for (const m of GRUB_MODULES) expect(grub.modules, m).toContain(m);
    expect(grub.prefix).toBe('/EFI/debian');
    // Debian's embedded script starts normal mode on its memdisk's grub.cfg, which sources $prefix/grub.cfg.
    expect(grub.config).toContain('normal (memdisk)/grub.cfg');
    const memdisk = join(dir, 'memdisk.img');
    await writeFile(memdisk, grub.memdisk!);
    expect((await espRead(memdisk, '/grub.cfg', dir)).toString()).toContain('source $prefix/grub.cfg');
    await expect(assertSignedGrub()).resolves.toBeUndefined();
  });

  it('refuses a GRUB that could not run the A/B logic (a self-built GRUB without loadenv, its prefix elsewhere)', async () => {
    const lean = join(dir, 'lean.efi');
    await run('grub-mkimage', ['-O', 'x86_64-efi', '-p', '/EFI/other', '-o', lean, ...GRUB_MODULES.filter((m) => m !== 'loadenv')]);
    expect((await readGrubImage(lean)).modules).not.toContain('loadenv');
    await expect(assertSignedGrub(lean)).rejects.toThrow(/lacks modules the A\/B boot logic needs: loadenv/);
  });

  it("'shim': Microsoft-signed shim at the removable path, Debian-signed GRUB beside it, the hand-over to /EFI/edgeplane", async () => {
    const esp = join(dir, 'esp-shim.img');
    await writeEsp(esp, 64, dir, await grubConfig(DEFAULT_KERNEL_ARGS), grubenv, 'shim');
    // No fbx64.efi: shim would run its fallback, which writes NVRAM boot entries.
    expect(await espFiles(esp)).toEqual([
      '/EFI/BOOT/BOOTX64.EFI',
      '/EFI/BOOT/grubx64.efi',
      '/EFI/BOOT/mmx64.efi',
      '/EFI/debian/grub.cfg',
      '/EFI/edgeplane/grub.cfg',
      '/EFI/edgeplane/grubenv',
    ]);
    const shim = join(dir, 'shim.efi');
    await writeFile(shim, await espRead(esp, '/EFI/BOOT/BOOTX64.EFI', dir));
    expect(await signers(shim)).toContain('Microsoft Corporation UEFI CA 2011');
    const grub = join(dir, 'grub.efi');
    await writeFile(grub, await espRead(esp, '/EFI/BOOT/grubx64.efi', dir));
    expect(await signers(grub)).toContain('Debian Secure Boot CA');
    const handOver = (await espRead(esp, '/EFI/debian/grub.cfg', dir)).toString();
    expect(handOver).toContain('set prefix=($root)/EFI/edgeplane');
    expect(handOver).toContain('source ${prefix}/grub.cfg');
    const cfgFile = join(dir, 'handover.cfg');
    await writeFile(cfgFile, Buffer.from(handOver));
    await expect(run('grub-script-check', [cfgFile])).resolves.toBeDefined();
  });

  it("'grub': the unsigned GRUB built here, alone at the removable path", async () => {
    const esp = join(dir, 'esp-grub.img');
    await writeEsp(esp, 64, dir, await grubConfig(DEFAULT_KERNEL_ARGS), grubenv, 'grub');
    expect(await espFiles(esp)).toEqual(['/EFI/BOOT/BOOTX64.EFI', '/EFI/edgeplane/grub.cfg', '/EFI/edgeplane/grubenv']);
    const efi = join(dir, 'unsigned.efi');
    await writeFile(efi, await espRead(esp, '/EFI/BOOT/BOOTX64.EFI', dir));
    expect((await readGrubImage(efi)).prefix).toBe('/EFI/edgeplane');
    expect((await run('sbverify', ['--list', efi])).stderr).toContain('No signature table present');
    expect(await kernelSigned(efi)).toBe(false);
  });

  it('kernelSigned tells a signed EFI image from the same image with its signature removed (sbattach --remove)', async () => {
    const copy = join(dir, 'stripped.efi');
    await copyFile(SIGNED_GRUB, copy);
    expect(await kernelSigned(copy)).toBe(true);
    await run('sbattach', ['--remove', copy]);
    expect(await kernelSigned(copy)).toBe(false);
    expect(await kernelSigned(join(dir, 'grubenv'))).toBe(false);
  });
});
