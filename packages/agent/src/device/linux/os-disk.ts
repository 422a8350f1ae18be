import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GrubEnv, type SlotMeta } from '../boot-env.js';
import { runTool } from '../run-tool.js';
import { LinuxSlots } from './linux-slots.js';
import { isSquashfs } from './squashfs.js';

/**
 * The bootable A/B disk of an Edgeplane OS image, built from its root filesystem: what
 * `edgeplane image build --disk` writes as the installer disk, and what an appliance's virt manager
 * writes as the base volume its VMs boot (through Libvirt.importOsDisk). One implementation for
 * both, so a VM boots exactly the disk a device is installed with. Real tools only (sfdisk,
 * mkfs.ext4, mkfs.vfat, mtools, grub-mkimage), no loop devices and no root needed.
 */

/** GPT partition type GUIDs. */
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export const MiB = 1024 * 1024;

export interface Partition {
  /** GPT partition name: how the initramfs, the init scripts and the agent find it. */
  name: 'esp' | 'root-a' | 'root-b' | 'data' | 'recovery';
  number: number;
  type: string;
  startMiB: number;
  sizeMiB: number;
}

export interface DiskLayout {
  partitions: Partition[];
  /** Whole disk, including 1 MiB before the first partition and 1 MiB for the backup GPT. */
  sizeMiB: number;
}

export interface LayoutSizes {
  espMiB?: number;
  slotMiB?: number;
  dataMiB?: number;
}

/** A disk that cannot be written: a partition image too large for its partition, or a missing tool. */
export class OsDiskError extends Error {
  constructor(
    readonly code: 'ImageTooLarge' | 'ImageToolMissing' | 'ImageBuildFailed',
    message: string,
  ) {
    super(message);
    this.name = 'OsDiskError';
  }
}

/**
 * The installer disk: 1 esp (FAT: GRUB, grub.cfg, grubenv), 2 root-a and 3 root-b (ext4, one OS
 * image each), 4 data (ext4: the device's writable state), 5 recovery (ext4: the installed image,
 * never updated; booted when neither A nor B can be loaded). Partition numbers are fixed: the boot
 * loader finds the slots by number (see packages/agent/boot/grub.cfg.template). On the disk, data
 * comes last (after recovery), so that on first boot it grows to the end of whatever disk it was
 * written to.
 */
export function diskLayout(sizes: LayoutSizes = {}): DiskLayout {
  const want: [Partition['name'], string, number][] = [
    ['esp', ESP_TYPE, sizes.espMiB ?? 64],
    ['root-a', LINUX_TYPE, sizes.slotMiB ?? 512],
    ['root-b', LINUX_TYPE, sizes.slotMiB ?? 512],
    ['data', LINUX_TYPE, sizes.dataMiB ?? 1024],
    ['recovery', LINUX_TYPE, sizes.slotMiB ?? 512],
  ];
  const physical: Partition['name'][] = ['esp', 'root-a', 'root-b', 'recovery', 'data'];
  const starts = new Map<string, number>();
  let start = 1;
  for (const name of physical) {
    starts.set(name, start);
    start += want.find((w) => w[0] === name)![2];
  }
  const partitions = want.map(([name, type, sizeMiB], i) => ({ name, number: i + 1, type, startMiB: starts.get(name)!, sizeMiB }));
  return { partitions, sizeMiB: start + 1 };
}

/** The sfdisk script for a layout (sectors of 512 bytes). */
export function sfdiskScript(layout: DiskLayout): string {
  const lines = ['label: gpt', 'unit: sectors', ''];
  for (const p of layout.partitions) lines.push(`start=${p.startMiB * 2048}, size=${p.sizeMiB * 2048}, type=${p.type}, name="${p.name}"`);
  return `${lines.join('\n')}\n`;
}

/**
 * Writes a GPT disk image file from partition images, without loop devices or root: sfdisk on the
 * file, then each partition image copied in at its offset (holes stay sparse).
 */
export async function writeDisk(output: string, layout: DiskLayout, images: Partial<Record<Partition['name'], string>>): Promise<void> {
  await rm(output, { force: true });
  await (await open(output, 'w')).close();
  await truncate(output, layout.sizeMiB * MiB);
  await sfdisk(output, sfdiskScript(layout));
  for (const p of layout.partitions) {
    const image = images[p.name];
    if (image) await copyInto(image, output, p);
  }
}

/**
 * Writes the layout's GPT onto a disk image or a block device (the installer writes it last, after
 * every partition's content, so an interrupted install leaves a disk no firmware boots).
 */
export function writePartitionTable(disk: string, layout: DiskLayout): Promise<void> {
  return sfdisk(disk, sfdiskScript(layout));
}

// sfdisk reads its script from stdin, which runTool (execFile without input) cannot feed.
function sfdisk(disk: string, script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', disk], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new OsDiskError('ImageToolMissing', 'writing a disk image needs sfdisk (Debian: apt-get install fdisk)') : err),
    );
    child.on('close', (code) => (code === 0 ? resolve() : reject(new OsDiskError('ImageBuildFailed', `sfdisk failed: ${stderr.trim()}`))));
    child.stdin.end(script);
  });
}

/**
 * Copies a partition image into the disk at the partition's offset; refuses one larger than the
 * partition. `sparse` (a fresh disk image file) skips all-zero blocks; a used block device needs
 * every byte written (`sparse: false`), or old content would show through the image's zeros.
 */
export async function copyInto(image: string, disk: string, p: Pick<Partition, 'name' | 'startMiB' | 'sizeMiB'>, sparse = true): Promise<void> {
  const src = await open(image, 'r');
  const dst = await open(disk, 'r+');
  try {
    const { size } = await src.stat();
    if (size > p.sizeMiB * MiB) throw new OsDiskError('ImageTooLarge', `${p.name} image is ${Math.ceil(size / MiB)} MiB; the partition has ${p.sizeMiB} MiB`);
    const buf = Buffer.alloc(4 * MiB);
    const zero = Buffer.alloc(buf.length);
    for (let off = 0; off < size; off += buf.length) {
      const { bytesRead } = await src.read(buf, 0, buf.length, off);
      // Leave all-zero blocks as holes: the disk stays sparse.
      if (sparse && buf.subarray(0, bytesRead).equals(zero.subarray(0, bytesRead))) continue;
      await dst.write(buf, 0, bytesRead, p.startMiB * MiB + off);
    }
    await dst.sync();
  } finally {
    await src.close();
    await dst.close();
  }
}

/**
 * The boot loader an ESP carries.
 * - 'shim': Debian's Secure Boot chain: shim signed with Microsoft's UEFI CA (what firmware trusts
 *   out of the box), then GRUB signed by Debian, which under Secure Boot loads only kernels signed by
 *   Debian (the slots carry Debian's signed kernel) or by a key enrolled with shim's MOK manager.
 *   Boots with Secure Boot enforced and on firmware without it.
 * - 'grub': GRUB built here with grub-mkimage from grub-efi-amd64-bin, unsigned: firmware without
 *   Secure Boot only.
 */
export type BootLoader = 'shim' | 'grub';

/** The signed binaries of the 'shim' boot loader on a Debian (bookworm) host, with their packages. */
export const SIGNED_BOOT_FILES = [
  { path: '/usr/lib/shim/shimx64.efi.signed', esp: 'EFI/BOOT/BOOTX64.EFI', pkg: 'shim-signed' },
  { path: '/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed', esp: 'EFI/BOOT/grubx64.efi', pkg: 'grub-efi-amd64-signed' },
  // MokManager: shim starts it when an operator enrols a key of their own with `mokutil --import`.
  { path: '/usr/lib/shim/mmx64.efi.signed', esp: 'EFI/BOOT/mmx64.efi', pkg: 'shim-helpers-amd64-signed (with shim-signed)' },
] as const;

/** 'shim' when this host has Debian's signed boot loader, else 'grub'. */
export function defaultBootLoader(): BootLoader {
  return SIGNED_BOOT_FILES.every((f) => existsSync(f.path)) ? 'shim' : 'grub';
}

/**
 * What Debian's signed GRUB reads: its prefix is built in as /EFI/debian on the device it was loaded
 * from, and its embedded configuration sources $prefix/grub.cfg (debian/build-efi-images in grub2
 * 2.06-13; the embedded script is readable in grubx64.efi.signed of grub-efi-amd64-signed
 * 2.06-13+deb12u2). This file only hands over to the A/B configuration in /EFI/edgeplane, the
 * directory both boot loaders share and where the agent edits the grubenv. Every command the A/B
 * configuration uses (load_env, save_env, regexp, serial, ...) is built into the signed GRUB, which
 * cannot load modules under Secure Boot.
 */
const SIGNED_GRUB_CFG = `# Edgeplane OS: Debian's signed GRUB reads /EFI/debian/grub.cfg; the A/B boot logic is in /EFI/edgeplane.
set prefix=($root)/EFI/edgeplane
source \${prefix}/grub.cfg
`;

/**
 * The EFI system partition image. Both boot loaders sit at the removable-media path
 * (EFI/BOOT/BOOTX64.EFI, so no NVRAM boot entry is needed); grub.cfg and the grubenv are in
 * EFI/edgeplane. With 'shim', shim loads grubx64.efi beside it (and no fbx64.efi is there: shim's
 * fallback would write NVRAM boot entries).
 */
export async function writeEsp(
  output: string,
  sizeMiB: number,
  workDir: string,
  grubCfg: string,
  grubenv: string,
  bootLoader: BootLoader = defaultBootLoader(),
): Promise<void> {
  const copies: [string, string][] = [];
  const dirs = ['::/EFI', '::/EFI/BOOT', '::/EFI/edgeplane'];
  if (bootLoader === 'shim') {
    for (const f of SIGNED_BOOT_FILES) {
      if (!existsSync(f.path)) throw new OsDiskError('ImageToolMissing', `the Secure Boot loader needs ${f.path} (Debian: apt-get install ${f.pkg})`);
      copies.push([f.path, `::/${f.esp}`]);
    }
    const stub = join(workDir, 'grub-debian.cfg');
    await writeFile(stub, SIGNED_GRUB_CFG);
    dirs.push('::/EFI/debian');
    copies.push([stub, '::/EFI/debian/grub.cfg']);
  } else {
    const efi = join(workDir, 'BOOTX64.EFI');
    await runTool('grub-mkimage', ['-O', 'x86_64-efi', '-p', '/EFI/edgeplane', '-o', efi, ...GRUB_MODULES], { timeoutMs: 120_000 }).catch((err: Error) => {
      throw new OsDiskError('ImageToolMissing', `grub-mkimage could not build the EFI loader (Debian: apt-get install grub-efi-amd64-bin): ${err.message}`);
    });
    copies.push([efi, '::/EFI/BOOT/BOOTX64.EFI']);
  }
  const cfg = join(workDir, 'grub.cfg');
  await writeFile(cfg, grubCfg);
  copies.push([cfg, '::/EFI/edgeplane/grub.cfg'], [grubenv, '::/EFI/edgeplane/grubenv']);
  await rm(output, { force: true });
  await runTool('mkfs.vfat', ['-C', '-F', '32', '-n', 'EDGEPLANE', output, String(sizeMiB * 1024)]);
  await runTool('mmd', ['-i', output, ...dirs]);
  for (const [from, to] of copies) await runTool('mcopy', ['-i', output, from, to]);
}

/** GRUB modules built into the EFI binary: GPT, FAT (ESP), ext4 and squashfs (slots; gzio reads its gzip), the A/B logic's commands, serial console. */
export const GRUB_MODULES = [
  'part_gpt',
  'fat',
  'ext2',
  'squash4',
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

/** Kernel command line of a disk: a serial console (VM consoles, labs) plus the screen. */
export const DEFAULT_KERNEL_ARGS = 'console=tty0 console=ttyS0,115200';

// In the source tree packages/agent/boot; in the bundle (an appliance's agent writing VM disks) beside
// the bundle's files, where scripts/build-dist.mjs copies it.
const GRUB_TEMPLATES = [new URL('../../../boot/grub.cfg.template', import.meta.url), new URL('./boot/grub.cfg.template', import.meta.url)];

/** boot/grub.cfg.template with this disk's values: grubenv beside grub.cfg on the ESP, no menu delay. */
export async function grubConfig(kernelArgs: string): Promise<string> {
  let template: string | undefined;
  for (const at of GRUB_TEMPLATES) {
    template = await readFile(at, 'utf8').catch(() => undefined);
    if (template !== undefined) break;
  }
  if (template === undefined) throw new Error(`boot/grub.cfg.template not found (looked in ${GRUB_TEMPLATES.map((u) => u.pathname).join(', ')})`);
  return template.replaceAll('@GRUBENV@', '${prefix}/grubenv').replaceAll('@TIMEOUT@', '0').replaceAll('@KERNEL_ARGS@', kernelArgs);
}

export interface OsDiskOptions {
  /** The image's extracted root filesystem; consumed (removed) once slot A is written. */
  tree: string;
  /** Slot record of root-a and recovery (digest, image reference, name, version). */
  meta: SlotMeta;
  /**
   * The partitions, or how to size them from the slot image once it is written (a squashfs slot
   * image's size is known only then; an ext4 slot is made at the layout's slot size).
   */
  layout: DiskLayout | ((slotImageBytes: number) => DiskLayout);
  /** The disk image file to write (raw, sparse). */
  output: string;
  /** Scratch directory for the partition images (removed by the caller). */
  workDir: string;
  kernelArgs?: string;
  /** The ESP's boot loader; default 'shim' when this host has Debian's signed one (defaultBootLoader). */
  bootLoader?: BootLoader;
  onStep?: (step: 'slots A and recovery' | 'ESP' | 'disk') => void;
  /** Called with slot A's image once written (e.g. to measure it), before the disk is assembled. */
  onSlotWritten?: (rootA: string) => Promise<void>;
  /** Called with the partition images once the disk is written, before the caller removes workDir (the installer ISO carries them). */
  onPartitionImages?: (images: Record<'esp' | 'root-a' | 'recovery' | 'data', string>, layout: DiskLayout) => Promise<void>;
}

/**
 * The disk step: slot A and recovery hold the image (written by the agent's own slot writer, so the
 * installed slots are exactly what an update writes), root-b is empty, data is a fresh ext4, and the
 * ESP boots slot A. Returns the layout written.
 */
export async function writeOsDisk(o: OsDiskOptions): Promise<DiskLayout> {
  const fixed = typeof o.layout === 'function' ? undefined : o.layout;
  await mkdir(o.workDir, { recursive: true });
  o.onStep?.('slots A and recovery');
  const rootA = join(o.workDir, 'root-a.img');
  const recovery = join(o.workDir, 'recovery.img');
  const slots = new LinuxSlots({
    root: o.workDir,
    targets: { A: rootA, recovery },
    ...(fixed ? { imageSizeBytes: partitionMiB(fixed, 'root-a') * MiB } : {}),
  });
  await slots.writeRecovery(o.tree, o.meta);
  const layout = typeof o.layout === 'function' ? o.layout((await stat(recovery)).size) : o.layout;
  if (await isSquashfs(recovery)) {
    // Slot A from the same tree and record would differ from recovery only in mksquashfs's time stamp.
    await copyFile(recovery, rootA);
    await rm(o.tree, { recursive: true, force: true });
  } else await slots.writeSlot('A', o.tree, o.meta);
  await o.onSlotWritten?.(rootA);
  const data = join(o.workDir, 'data.img');
  await runTool('mkfs.ext4', ['-F', '-q', '-L', 'edgeplane-data', data, `${partitionMiB(layout, 'data') * 1024}k`]);

  o.onStep?.('ESP');
  const grubenv = new GrubEnv(join(o.workDir, 'grubenv'));
  await grubenv.set({ active_slot: 'A' });
  const esp = join(o.workDir, 'esp.img');
  await writeEsp(esp, partitionMiB(layout, 'esp'), o.workDir, await grubConfig(o.kernelArgs ?? DEFAULT_KERNEL_ARGS), grubenv.file, o.bootLoader);

  o.onStep?.('disk');
  await writeDisk(o.output, layout, { esp, 'root-a': rootA, data, recovery });
  await o.onPartitionImages?.({ esp, 'root-a': rootA, recovery, data }, layout);
  return layout;
}

/** A partition's size in a layout (MiB; 0 when the layout has none of that name). */
export function partitionMiB(layout: DiskLayout, name: Partition['name']): number {
  return layout.partitions.find((p) => p.name === name)?.sizeMiB ?? 0;
}

/** Bytes of the files under a tree (symlinks counted as links): sizes slots for an image. */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await lstat(join(e.parentPath, e.name))).size;
  }
  return total;
}
