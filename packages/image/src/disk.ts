import {
  type DiskLayout,
  GRUB_MODULES,
  OsDiskError,
  type OsDiskOptions,
  type Partition,
  writeDisk as writeDiskImage,
  writeEsp as writeEspImage,
  writeOsDisk as writeOsDiskImage,
} from '@edgeplane/agent';
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

/** The EFI system partition image (see the agent's writeEsp). */
export async function writeEsp(output: string, sizeMiB: number, workDir: string, grubCfg: string, grubenv: string): Promise<void> {
  for (const tool of ['grub-mkimage', 'mkfs.vfat', 'mmd', 'mcopy']) await which(tool);
  await writeEspImage(output, sizeMiB, workDir, grubCfg, grubenv).catch((err: unknown) => {
    throw asBuildError(err);
  });
}

/** Slots A and recovery, data, ESP and the GPT disk from an image's root filesystem (see the agent's writeOsDisk). */
export async function writeOsDisk(options: OsDiskOptions): Promise<void> {
  for (const tool of ['sfdisk', 'mkfs.ext4', 'grub-mkimage', 'mkfs.vfat', 'mmd', 'mcopy']) await which(tool);
  await writeOsDiskImage(options).catch((err: unknown) => {
    throw asBuildError(err);
  });
}
