import { copyFile, link, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BootLoader, DEFAULT_KERNEL_ARGS, GrubEnv, INSTALL_MEDIA_DIR, type InstallManifest, MiB, type SlotMeta } from '@edgeplane/agent';
import { writeEsp } from './disk.js';
import { ImageBuildError, runTool, which } from './tools.js';

/**
 * The installer ISO of `edgeplane image build --installer`: a hybrid ISO 9660 image (a CD and, as a
 * GPT disk, a USB stick) whose EFI system partition carries the disk's own boot chain (with 'shim':
 * Debian's signed shim and GRUB, so it boots under Secure Boot) and the image's kernel and initramfs.
 * GRUB boots them with the install flag; the initramfs mounts edgeplane/root.img from the medium as
 * the live root, and the agent service runs `edgeplane installer install-os` (packages/agent/src/install).
 */

/** ISO 9660 volume id of the install medium: the initramfs finds the medium by it (edgeplane.live=...). */
export const INSTALLER_VOLUME_ID = 'EDGEPLANE_INSTALL';

/** Kernel modules the live system needs on top of the image's: the root image on the medium (loop) and the media (CD drives, USB sticks). */
export const INSTALLER_MODULES = ['loop', 'isofs', 'cdrom', 'sr_mod', 'virtio_scsi', 'xhci_pci', 'ehci_pci', 'usb_storage', 'uas'];

/** The Debian base's seed on the data partition: /var's overlay upper layer, i.e. /var/lib/cloud/seed/nocloud (cloud-init's NoCloud seed directory). */
export const OS2_SEED_PATHS = ['overlay/var/upper/lib/cloud/seed/nocloud'];

export interface InstallerIsoOptions {
  /** The ISO to write. */
  output: string;
  /** Scratch directory (removed by the caller). */
  workDir: string;
  /** The slot image (ext4 with the image and its slot record) and the disk's ESP, from the disk step. */
  rootImage: string;
  espImage: string;
  /** The image's kernel and initramfs (the initramfs must know edgeplane.live: files/initramfs-init). */
  vmlinuz: string;
  initrd: string;
  sizes: { espMiB: number; slotMiB: number };
  meta: SlotMeta;
  bootLoader: BootLoader;
  kernelArgs?: string;
  /** A NoCloud seed directory (user-data, meta-data) to carry on the medium; a CIDATA volume attached at install time wins. */
  seedDir?: string;
  /** Where in the data filesystem the installed image looks for the seed (InstallManifest.seedPaths). */
  seedPaths?: string[];
}

/**
 * GRUB menu of the medium. When a disk of the machine already has an Edgeplane ESP (its grubenv; the
 * medium's own ESP has none), booting that disk is the default, so a stick left in after an install
 * does not install again at the next boot: installing over it is the second entry, chosen by hand.
 */
export function installerGrubConfig(version: string, kernelArgs: string): string {
  return `# Edgeplane OS installer (written by edgeplane image build --installer)
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=5
set default=install
search --no-floppy --file --set=installed /EFI/edgeplane/grubenv
if [ -n "\${installed}" ]; then
  set default=disk
  set timeout=10
  echo "Edgeplane: a disk of this machine (\${installed}) already has Edgeplane OS: booting it unless you choose Install"
  menuentry "Boot Edgeplane OS installed on \${installed}" --id disk {
    set root=\${installed}
    configfile /EFI/edgeplane/grub.cfg
  }
fi
menuentry "Install Edgeplane OS ${version} (ERASES the target disk)" --id install {
  linux /live/vmlinuz edgeplane.live=${INSTALLER_VOLUME_ID} edgeplane.install ro panic=30 ${kernelArgs}
  initrd /live/initrd.img
}
`;
}

/** The ESP of the medium: the boot chain (writeEsp), the installer menu, the kernel and initramfs; no grubenv (see installerGrubConfig). */
async function writeBootEsp(o: InstallerIsoOptions, output: string): Promise<void> {
  const work = join(o.workDir, 'boot-esp');
  await mkdir(work, { recursive: true });
  const bytes = (await stat(o.vmlinuz)).size + (await stat(o.initrd)).size;
  // FAT32 needs about 33 MiB at least; room for the boot loader besides the kernel and initramfs.
  const sizeMiB = Math.max(64, Math.ceil(bytes / MiB) + 24);
  const grubenv = new GrubEnv(join(work, 'grubenv'));
  await grubenv.ensure();
  await writeEsp(output, sizeMiB, work, installerGrubConfig(o.meta.version ?? '', o.kernelArgs ?? DEFAULT_KERNEL_ARGS), grubenv.file, o.bootLoader);
  await runTool('mdel', ['-i', output, '::/EFI/edgeplane/grubenv']);
  await runTool('mmd', ['-i', output, '::/live']);
  await runTool('mcopy', ['-i', output, o.vmlinuz, '::/live/vmlinuz']);
  await runTool('mcopy', ['-i', output, o.initrd, '::/live/initrd.img']);
}

/** Writes the installer ISO. */
export async function writeInstallerIso(o: InstallerIsoOptions): Promise<void> {
  await which('xorriso').catch(() => {
    throw new ImageBuildError('ImageToolMissing', 'image build --installer needs xorriso (Debian: apt-get install xorriso)');
  });
  const tree = join(o.workDir, 'iso');
  const media = join(tree, INSTALL_MEDIA_DIR);
  await mkdir(media, { recursive: true });
  // Hard links where the scratch directory allows (the slot image is hundreds of MiB), else copies.
  const place = (from: string, to: string) => link(from, to).catch(() => copyFile(from, to));
  await place(o.rootImage, join(media, 'root.img'));
  await place(o.espImage, join(media, 'esp.img'));
  const manifest: InstallManifest = { ...o.sizes, meta: o.meta, ...(o.seedPaths ? { seedPaths: o.seedPaths } : {}) };
  await writeFile(join(media, 'install.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  if (o.seedDir) {
    const userData = await readFile(join(o.seedDir, 'user-data')).catch(() => undefined);
    if (!userData) throw new ImageBuildError('ImageBuildFailed', `the installer seed ${o.seedDir} has no user-data file`);
    await mkdir(join(media, 'seed'), { recursive: true });
    await writeFile(join(media, 'seed/user-data'), userData, { mode: 0o600 });
    const metaData = await readFile(join(o.seedDir, 'meta-data')).catch(() => undefined);
    if (metaData) await writeFile(join(media, 'seed/meta-data'), metaData);
  }
  const bootEsp = join(o.workDir, 'boot-esp.img');
  await writeBootEsp(o, bootEsp);
  // The boot ESP is appended as GPT partition 2 and is also the El Torito EFI boot image: firmware
  // boots it from a CD and from a USB stick the ISO was written to (xorriso(1), "-append_partition",
  // "-appended_part_as_gpt", and "-e --interval:appended_partition_2:all::" in xorrisofs(1), xorriso 1.5).
  // ISO level 3: the slot image may exceed 4 GiB.
  await runTool(
    'xorriso',
    [
      '-as',
      'mkisofs',
      '-o',
      o.output,
      '-V',
      INSTALLER_VOLUME_ID,
      '-iso-level',
      '3',
      '-r',
      '-partition_offset',
      '16',
      '-append_partition',
      '2',
      '0xef',
      bootEsp,
      '-appended_part_as_gpt',
      '-e',
      '--interval:appended_partition_2:all::',
      '-no-emul-boot',
      tree,
    ],
    { timeoutMs: 20 * 60_000 },
  ).catch((err: Error) => {
    throw new ImageBuildError('ImageBuildFailed', `xorriso could not write the installer ISO: ${err.message}`);
  });
}
