import { existsSync } from 'node:fs';
import {
  type BootLoader,
  type DiskLayout,
  GRUB_MODULES,
  OsDiskError,
  type OsDiskOptions,
  type Partition,
  SIGNED_BOOT_FILES,
  writeDisk as writeDiskImage,
  writeEsp as writeEspImage,
  writeOsDisk as writeOsDiskImage,
} from '@edgeplane/agent';
import { assertSignedGrub } from './secure-boot.js';
import { ImageBuildError, which } from './tools.js';

/**
 * The disk step of `edgeplane image build --disk`. The implementation lives in the agent
 * (device/linux/os-disk.ts), since an appliance's virt manager writes the same disk for its VMs; here
 * each step first checks its host tools (naming the Debian package) and reports ImageBuildError.
 */
export { GRUB_MODULES };

const asBuildError = (err: unknown) => (err instanceof OsDiskError ? new ImageBuildError(err.code, err.message) : err);

/** Writes a GPT disk image file from partition images (see the agent's writeDisk). */
export async function writeDisk(output: string, layout: DiskLayout, images: Partial<Record<Partition['name'], string>>): Promise<void> {
  await which('sfdisk');
  await writeDiskImage(output, layout, images).catch((err: unknown) => {
    throw asBuildError(err);
  });
}

/** Tools of the ESP step: the signed boot loader is copied, the unsigned one built with grub-mkimage. */
const espTools = (bootLoader: BootLoader) => [...(bootLoader === 'grub' ? ['grub-mkimage'] : []), 'mkfs.vfat', 'mmd', 'mcopy'];

/**
 * Host tools of the ESP step, and with 'shim' the signed binaries (before any slot is written: a
 * missing package fails the build at once) and a signed GRUB that can run the A/B logic.
 */
async function checkEsp(bootLoader: BootLoader): Promise<void> {
  for (const tool of espTools(bootLoader)) await which(tool);
  if (bootLoader !== 'shim') return;
  for (const f of SIGNED_BOOT_FILES) {
    if (!existsSync(f.path)) throw new ImageBuildError('ImageToolMissing', `the Secure Boot loader needs ${f.path} (Debian: apt-get install ${f.pkg})`);
  }
  await assertSignedGrub();
}

/** The EFI system partition image (see the agent's writeEsp); the builder's default boot loader is the signed 'shim'. */
export async function writeEsp(
  output: string,
  sizeMiB: number,
  workDir: string,
  grubCfg: string,
  grubenv: string,
  bootLoader: BootLoader = 'shim',
): Promise<void> {
  await checkEsp(bootLoader);
  await writeEspImage(output, sizeMiB, workDir, grubCfg, grubenv, bootLoader).catch((err: unknown) => {
    throw asBuildError(err);
  });
}

/**
 * Slots A and recovery, data, ESP and the GPT disk from an image's root filesystem (see the agent's
 * writeOsDisk). The builder's default boot loader is the signed 'shim' (Secure Boot), whether or not
 * this host has it: a missing package is an error naming it, never a silently unsigned disk.
 */
export async function writeOsDisk(options: OsDiskOptions): Promise<DiskLayout> {
  const bootLoader = options.bootLoader ?? 'shim';
  for (const tool of ['sfdisk', 'mkfs.ext4']) await which(tool);
  await checkEsp(bootLoader);
  return writeOsDiskImage({ ...options, bootLoader }).catch((err: unknown) => {
    throw asBuildError(err);
  });
}
