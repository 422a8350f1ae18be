import { readFile } from 'node:fs/promises';
import { GRUB_MODULES, SIGNED_BOOT_FILES } from '@edgeplane/agent';
import { ImageBuildError } from './tools.js';

/**
 * What a signed GRUB EFI image carries, read from the file: under Secure Boot GRUB loads no module
 * from disk (shim_lock refuses them), so every command grub.cfg runs must be built in, and its
 * configuration is found through the prefix built in with it.
 */
export interface GrubImage {
  /** Modules built into the image (the `.modname` of each). */
  modules: string[];
  /** The prefix given to grub-mkimage -p (Debian's signed GRUB: /EFI/debian). */
  prefix?: string;
  /** The embedded configuration script (grub-mkimage -c). */
  config?: string;
  /** The embedded memdisk (grub-mkimage -m; Debian's is a FAT image holding the grub.cfg its embedded config starts). */
  memdisk?: Buffer;
}

/** The signed GRUB of the 'shim' boot loader (grub-efi-amd64-signed). */
export const SIGNED_GRUB = SIGNED_BOOT_FILES.find((f) => f.esp === 'EFI/BOOT/grubx64.efi')!.path;

/**
 * Reads a GRUB EFI image's "mods" PE section: a grub_module_info64 header ("mimg", offset, size)
 * followed by objects, each a grub_module_header {type, size} and its data: type 0 a module (ELF),
 * 1 the memdisk, 2 the embedded config, 3 the prefix (include/grub/kernel.h and util/mkimage.c in
 * GRUB 2.06).
 * Hand-written: no tool lists what a GRUB image has built in.
 */
export async function readGrubImage(file: string): Promise<GrubImage> {
  const pe = await readFile(file);
  const mods = peSection(pe, 'mods');
  if (!mods || pe.toString('latin1', mods, mods + 4) !== 'mimg') throw new Error(`${file} is not a GRUB EFI image (no "mods" section)`);
  const end = mods + Number(pe.readBigUInt64LE(mods + 16));
  const image: GrubImage = { modules: [] };
  for (let at = mods + Number(pe.readBigUInt64LE(mods + 8)); at + 8 <= end; ) {
    const type = pe.readUInt32LE(at);
    const size = pe.readUInt32LE(at + 4);
    if (size < 8) break;
    const body = pe.subarray(at + 8, at + size);
    if (type === 0) {
      const name = elfModname(body);
      if (name) image.modules.push(name);
    } else if (type === 1) image.memdisk = body;
    else if (type === 2) image.config = cString(body);
    else if (type === 3) image.prefix = cString(body);
    at += size;
  }
  return image;
}

/**
 * Refuses a signed GRUB that cannot run Edgeplane's grub.cfg (a module missing: e.g. loadenv, whose
 * save_env clears the one-time trial) or would not read it (another prefix than /EFI/debian, where
 * the ESP's hand-over file is).
 */
export async function assertSignedGrub(file: string = SIGNED_GRUB): Promise<void> {
  const grub = await readGrubImage(file).catch((err: Error) => {
    throw new ImageBuildError('ImageBuildFailed', `cannot read the signed GRUB ${file}: ${err.message}`);
  });
  const missing = GRUB_MODULES.filter((m) => !grub.modules.includes(m));
  if (missing.length)
    throw new ImageBuildError(
      'ImageBuildFailed',
      `the signed GRUB ${file} lacks modules the A/B boot logic needs: ${missing.join(', ')} (build with --boot-loader grub)`,
    );
  if (grub.prefix !== '/EFI/debian')
    throw new ImageBuildError('ImageBuildFailed', `the signed GRUB ${file} looks for its configuration in ${grub.prefix ?? '(no prefix)'}, not /EFI/debian`);
}

/** File offset of a PE section by name. */
function peSection(pe: Buffer, name: string): number | undefined {
  const header = pe.readUInt32LE(0x3c);
  const count = pe.readUInt16LE(header + 6);
  const optionalSize = pe.readUInt16LE(header + 20);
  const table = header + 24 + optionalSize;
  for (let i = 0; i < count; i++) {
    const s = table + i * 40;
    if (cString(pe.subarray(s, s + 8)) === name) return pe.readUInt32LE(s + 20);
  }
  return undefined;
}

/** The `.modname` section of an ELF64 GRUB module. */
function elfModname(elf: Buffer): string | undefined {
  if (elf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return { name: elf.readUInt32LE(at), offset: Number(elf.readBigUInt64LE(at + 24)), size: Number(elf.readBigUInt64LE(at + 32)) };
  };
  const names = section(elf.readUInt16LE(0x3e));
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (cString(elf.subarray(names.offset + s.name)) === '.modname') return cString(elf.subarray(s.offset, s.offset + s.size));
  }
  return undefined;
}

function cString(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return bytes.toString('utf8', 0, nul < 0 ? bytes.length : nul);
}
