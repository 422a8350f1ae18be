import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type DiskLayout, diskLayout, MiB } from '../device/linux/os-disk.js';

/** A whole disk as the kernel lists it in /sys/block. */
export interface BlockDisk {
  /** Kernel name: sda, vda, nvme0n1, mmcblk0. */
  name: string;
  /** /dev/<name>. */
  path: string;
  sizeBytes: number;
  /** /sys/block/<name>/removable: USB sticks, SD cards, CD drives. */
  removable: boolean;
  readOnly: boolean;
  /** Model string, when the driver gives one (for the console message). */
  model?: string;
}

/** Block devices that are never an install target: loop, RAM, compressed RAM, CD drives, device-mapper, md, nbd, floppies. */
const NOT_DISKS = /^(loop|ram|zram|sr|dm-|md|nbd|fd)\d*/;

/**
 * The machine's whole disks, from sysfs (no udev in the live system): /sys/block/<name>/{size (in
 * 512-byte sectors whatever the disk's sector size), removable, ro, device/model}.
 */
export async function listDisks(sysRoot = '/'): Promise<BlockDisk[]> {
  const block = join(sysRoot, 'sys/block');
  const read = (name: string, file: string) =>
    readFile(join(block, name, file), 'utf8').then(
      (s) => s.trim(),
      () => undefined,
    );
  const disks: BlockDisk[] = [];
  for (const name of (await readdir(block).catch(() => [] as string[])).sort()) {
    if (NOT_DISKS.test(name)) continue;
    const sectors = Number(await read(name, 'size'));
    if (!Number.isFinite(sectors) || sectors <= 0) continue;
    const model = await read(name, 'device/model');
    disks.push({
      name,
      path: `/dev/${name}`,
      sizeBytes: sectors * 512,
      removable: (await read(name, 'removable')) === '1',
      readOnly: (await read(name, 'ro')) === '1',
      ...(model ? { model } : {}),
    });
  }
  return disks;
}

/**
 * The whole disk a block device belongs to (sda for sda2, nvme0n1 for nvme0n1p1): /sys/class/block/<dev>
 * of a partition links into its disk's directory. `device` may be a path (/dev/sda2, a /dev/disk/by-* link).
 */
export async function diskOf(device: string, sysRoot = '/'): Promise<string | undefined> {
  const name = basename(await realpath(device).catch(() => device));
  const link = await realpath(join(sysRoot, 'sys/class/block', name)).catch(() => undefined);
  if (!link) return undefined;
  const isPartition = await readFile(join(link, 'partition'), 'utf8').then(
    () => true,
    () => false,
  );
  return isPartition ? basename(join(link, '..')) : name;
}

export type DiskChoice = { ok: true; disk: BlockDisk; why: string } | { ok: false; reason: string };

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
export const describeDisk = (d: BlockDisk) =>
  `${d.path} (${gib(d.sizeBytes)}${d.model ? `, ${d.model}` : ''}${d.removable ? ', removable' : ''}${d.readOnly ? ', read-only' : ''})`;

export interface ChooseDiskOptions {
  /** install.device of the user-data, resolved to a kernel name (diskOf); undefined: choose automatically. */
  device?: { asGiven: string; name?: string; isPartition?: boolean };
  /** Kernel names of disks that are never a target: the install medium, the seed volume. */
  exclude: { name: string; why: string }[];
}

/**
 * The install target. With install.device: that disk, whatever its kind (the technician named it),
 * unless it is the install medium or read-only. Without: the largest non-removable, writable disk
 * that is not the medium; two candidates of the same largest size are refused, never guessed between.
 */
export function chooseDisk(disks: BlockDisk[], o: ChooseDiskOptions): DiskChoice {
  const excluded = new Map(o.exclude.map((e) => [e.name, e.why]));
  const all = disks.map(describeDisk).join(', ') || 'none';
  if (o.device) {
    const { asGiven, name } = o.device;
    if (o.device.isPartition) return { ok: false, reason: `install.device ${asGiven} is a partition; name the whole disk (disks here: ${all})` };
    const disk = disks.find((d) => d.name === name);
    if (!disk) return { ok: false, reason: `install.device ${asGiven} is not a disk on this machine (disks here: ${all})` };
    const why = excluded.get(disk.name);
    if (why) return { ok: false, reason: `install.device ${asGiven} is ${why}; it cannot be the install target` };
    if (disk.readOnly) return { ok: false, reason: `install.device ${asGiven} is read-only` };
    return { ok: true, disk, why: `install.device in the user-data names ${asGiven}` };
  }
  const candidates = disks.filter((d) => !excluded.has(d.name) && !d.removable && !d.readOnly);
  if (candidates.length === 0) {
    return {
      ok: false,
      reason: `no disk to install to: the target must be a writable, non-removable disk other than the install medium (disks here: ${all}); to install to a removable disk, name it with install.device in the user-data`,
    };
  }
  const sorted = [...candidates].sort((a, b) => b.sizeBytes - a.sizeBytes);
  const [largest, second] = sorted;
  if (second && second.sizeBytes === largest.sizeBytes) {
    const tied = sorted.filter((d) => d.sizeBytes === largest.sizeBytes);
    return {
      ok: false,
      reason: `${tied.length} disks of the same size are candidates: ${tied.map(describeDisk).join(', ')}; the installer does not guess which to erase. Name one with install.device in the user-data (e.g. install: { device: ${tied[0].path} })`,
    };
  }
  const others = sorted.slice(1);
  return {
    ok: true,
    disk: largest,
    why: `the largest non-removable disk${others.length ? ` (also here: ${others.map(describeDisk).join(', ')})` : ''}`,
  };
}

/** Partition sizes of an install, from the image's disk (install.json): ESP and slot size. */
export interface InstallSizes {
  espMiB: number;
  slotMiB: number;
}

/** The smallest data partition an install leaves (MiB): agent state, download cache, a Kubernetes datastore. */
export const MIN_DATA_MIB = 512;

/**
 * The A/B layout (diskLayout: esp, root-a, root-b, recovery, data) of an install on a disk of
 * `diskBytes`: the image's ESP and slot sizes, and data filling the rest of the disk (1 MiB before
 * the first partition and 1 MiB at the end for the backup GPT). Undefined when the disk is too small.
 */
export function installLayout(diskBytes: number, sizes: InstallSizes): DiskLayout | undefined {
  const dataMiB = Math.floor(diskBytes / MiB) - 2 - sizes.espMiB - 3 * sizes.slotMiB;
  if (dataMiB < MIN_DATA_MIB) return undefined;
  return diskLayout({ espMiB: sizes.espMiB, slotMiB: sizes.slotMiB, dataMiB });
}

/** The smallest disk (bytes) an install of these sizes fits. */
export const minimumDiskBytes = (sizes: InstallSizes) => (2 + sizes.espMiB + 3 * sizes.slotMiB + MIN_DATA_MIB) * MiB;
