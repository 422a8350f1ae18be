import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CloudConfig, InstallSpec } from '@edgeplane/protocol';
import { parse as parseYaml } from 'yaml';
import type { SlotMeta } from '../device/boot-env.js';
import { copyInto, type DiskLayout, MiB, writePartitionTable } from '../device/linux/os-disk.js';
import { runTool } from '../device/run-tool.js';
import { isCloudConfig } from '../seed/cloud-config.js';
import { type BlockDisk, chooseDisk, describeDisk, diskOf, type InstallSizes, installLayout, listDisks, minimumDiskBytes } from './disks.js';

/**
 * What the installer ISO carries in its `edgeplane/` directory (written by `edgeplane image build
 * --installer`): the image's slot (root.img: the ext4 filesystem slot A and recovery get, with its
 * slot record), the disk's ESP (esp.img: the signed boot chain, grub.cfg, a grubenv booting slot A),
 * this file, and optionally a NoCloud seed (seed/user-data, seed/meta-data).
 */
export const INSTALL_MEDIA_DIR = 'edgeplane';
export interface InstallManifest extends InstallSizes {
  /** The image installed (slot A and recovery). */
  meta: SlotMeta;
  /**
   * Directories of the data filesystem the seed is copied to, where the installed image looks for it
   * (default [INSTALLED_SEED_DIR]). The Debian base: its /var overlay's upper layer, so that
   * /var/lib/cloud/seed/nocloud is there for cloud-init's NoCloud and for the agent.
   */
  seedPaths?: string[];
}

/** Where the busybox image's agent finds the seed the installer copied (the data partition is mounted at /var/lib/edgeplane). */
export const INSTALLED_SEED_DIR = 'seed';

/** An install refused before anything was written (or that failed while writing): the console shows the message. */
export class InstallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstallError';
  }
}

export interface InstallOptions {
  /** The mounted install medium (its root: edgeplane/install.json ...). */
  media: string;
  /** Seed directories to take the user-data from, first match wins (an attached CIDATA volume, then the medium's). */
  seedDirs: string[];
  /** Devices never to install to besides the medium's disk (kernel names or paths): e.g. the seed volume. */
  exclude?: string[];
  /** Root of /sys and /dev (tests). */
  sysRoot?: string;
  /** Console lines (the live system prints them on ttyS0 and tty0). */
  say: (line: string) => void;
}

export interface InstallResult {
  disk: BlockDisk;
  layout: DiskLayout;
  keptData: boolean;
  seed?: string;
}

interface Seed {
  dir: string;
  userData: string;
  metaData?: string;
  install: InstallSpec;
}

/** The first seed directory with a user-data file; its `install:` section validated, and the whole cloud-config. */
export async function readInstallSeed(dirs: string[]): Promise<Seed | undefined> {
  for (const dir of dirs) {
    const userData = await readFile(join(dir, 'user-data'), 'utf8').catch(() => undefined);
    if (userData === undefined) continue;
    const metaData = await readFile(join(dir, 'meta-data'), 'utf8').catch(() => undefined);
    let doc: unknown;
    try {
      doc = parseYaml(userData);
    } catch (err) {
      throw new InstallError(`the user-data in ${dir} is not valid YAML: ${(err as Error).message}`);
    }
    const issues = (error: { issues: { path: PropertyKey[]; message: string }[] }, prefix: string) =>
      error.issues.map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.') || '(root)'}: ${i.message}`).join('; ');
    const section = (doc as { install?: unknown } | null)?.install;
    const install = InstallSpec.safeParse(section ?? {});
    if (!install.success) throw new InstallError(`the user-data in ${dir} has an invalid install section: ${issues(install.error, 'install')}`);
    if (isCloudConfig(userData)) {
      const full = CloudConfig.safeParse(doc);
      if (!full.success) throw new InstallError(`the user-data in ${dir} would not register the device: ${issues(full.error, '')}`);
    }
    return { dir, userData, ...(metaData !== undefined ? { metaData } : {}), install: install.data };
  }
  return undefined;
}

/** ext4's superblock at 1024 bytes into the filesystem: magic 0xEF53 at 0x38, volume name at 0x78 (16 bytes). */
async function ext4Label(device: string, offset: number): Promise<string | undefined> {
  const fh = await open(device, 'r');
  try {
    const sb = Buffer.alloc(1024);
    await fh.read(sb, 0, sb.length, offset + 1024);
    if (sb.readUInt16LE(0x38) !== 0xef53) return undefined;
    const name = sb.subarray(0x78, 0x88);
    const nul = name.indexOf(0);
    return name.toString('latin1', 0, nul < 0 ? name.length : nul);
  } finally {
    await fh.close();
  }
}

/** Zeroes `bytes` at `offset` of the device. */
async function zero(device: string, offset: number, bytes: number): Promise<void> {
  const fh = await open(device, 'r+');
  try {
    const buf = Buffer.alloc(Math.min(bytes, 4 * MiB));
    for (let done = 0; done < bytes; done += buf.length) await fh.write(buf, 0, Math.min(buf.length, bytes - done), offset + done);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Installs the image on the install medium to a disk of this machine: the A/B layout of the
 * builder's disk (device/linux/os-disk.ts: esp, root-a, root-b, recovery, data filling the rest),
 * slot A and recovery with the image, the ESP booting slot A, the seed on the data partition.
 *
 * Order, so that an interrupted install starts over cleanly: both GPTs (first and last MiB) are
 * zeroed first, so a half-written disk has no partition table and the firmware boots the installer
 * again; then every partition's content is written at its offset; the GPT is written last. Nothing
 * of an earlier install is kept (data is made anew, slot B's superblock is zeroed) unless
 * install.keepData finds an Edgeplane data filesystem where this layout puts data.
 */
export async function installOs(o: InstallOptions): Promise<InstallResult> {
  const sysRoot = o.sysRoot ?? '/';
  const dir = join(o.media, INSTALL_MEDIA_DIR);
  const manifest = JSON.parse(await readFile(join(dir, 'install.json'), 'utf8').catch(() => '{}')) as Partial<InstallManifest>;
  if (!manifest.meta || !manifest.espMiB || !manifest.slotMiB)
    throw new InstallError(`${o.media} is not an Edgeplane install medium (no ${INSTALL_MEDIA_DIR}/install.json)`);
  const sizes = { espMiB: manifest.espMiB, slotMiB: manifest.slotMiB };
  const seedPaths = manifest.seedPaths?.length ? manifest.seedPaths : [INSTALLED_SEED_DIR];
  o.say(`Edgeplane installer: ${manifest.meta.name ?? 'Edgeplane OS'} ${manifest.meta.version ?? ''} (${manifest.meta.digest})`);

  const seed = await readInstallSeed(o.seedDirs);
  if (seed) o.say(`user-data: ${join(seed.dir, 'user-data')}`);
  else o.say('no user-data (no CIDATA volume, none on the medium): the device will pair at the edge with a code');

  const exclude: { name: string; why: string }[] = [];
  const mediaDisk = await mountedDisk(o.media, sysRoot);
  if (mediaDisk) exclude.push({ name: mediaDisk, why: 'the install medium' });
  for (const e of o.exclude ?? []) {
    const name = await diskOf(e, sysRoot);
    if (name) exclude.push({ name, why: 'the seed volume' });
  }
  const disks = await listDisks(sysRoot);
  let device: { asGiven: string; name?: string; isPartition?: boolean } | undefined;
  if (seed?.install.device) {
    const asGiven = seed.install.device;
    const name = await diskOf(join(sysRoot, asGiven), sysRoot);
    device = { asGiven, name, isPartition: name !== undefined && name !== basename(await realpathOr(join(sysRoot, asGiven))) };
  }
  const choice = chooseDisk(disks, { device, exclude });
  if (!choice.ok) throw new InstallError(choice.reason);
  const disk = choice.disk;
  const layout = installLayout(disk.sizeBytes, sizes);
  if (!layout) throw new InstallError(`${describeDisk(disk)} is too small: this image needs at least ${Math.ceil(minimumDiskBytes(sizes) / MiB)} MiB`);
  o.say(`target: ${describeDisk(disk)}: ${choice.why}`);
  const target = join(sysRoot, 'dev', disk.name);
  const at = (name: string) => layout.partitions.find((p) => p.name === name)!;
  const data = at('data');

  let keepData = false;
  if (seed?.install.keepData) {
    const label = await ext4Label(target, data.startMiB * MiB);
    if (label !== 'edgeplane-data')
      throw new InstallError(
        `install.keepData: ${disk.path} has no Edgeplane data partition at ${data.startMiB} MiB (where this image's layout puts it${label ? `; found an ext4 filesystem labelled "${label}"` : ''}); remove keepData to erase the disk`,
      );
    keepData = true;
  }
  o.say(keepData ? `erasing ${disk.path} except its data partition (install.keepData)` : `erasing ${disk.path}: nothing on it is kept`);

  // 1. No partition table while the disk is written: both GPTs go first.
  await zero(target, 0, MiB);
  await zero(target, Math.floor(disk.sizeBytes / MiB) * MiB - MiB, MiB);
  // 2. Partition contents at their offsets.
  o.say('writing the ESP (boot loader, grub.cfg, grubenv: slot A)');
  await copyInto(join(dir, 'esp.img'), target, at('esp'), false);
  o.say(`writing slot A (${sizes.slotMiB} MiB)`);
  await copyInto(join(dir, 'root.img'), target, at('root-a'), false);
  o.say('writing the recovery slot');
  await copyInto(join(dir, 'root.img'), target, at('recovery'), false);
  // Slot B starts empty: an old install's slot B must not read as an image (the agent checks the superblock).
  await zero(target, at('root-b').startMiB * MiB, MiB);
  const work = await mkdtemp(join(tmpdir(), 'edgeplane-install-'));
  try {
    const tree = join(work, 'data');
    await mkdir(tree, { recursive: true });
    if (seed) {
      for (const path of seedPaths) {
        await mkdir(join(tree, path), { recursive: true });
        await writeFile(join(tree, path, 'user-data'), seed.userData, { mode: 0o600 });
        if (seed.metaData !== undefined) await writeFile(join(tree, path, 'meta-data'), seed.metaData);
      }
    }
    const fs = `${target}?offset=${data.startMiB * MiB}`;
    if (keepData) {
      if (seed) await copySeedInto(fs, tree, seedPaths, work);
    } else {
      o.say(`making the data partition (${data.sizeMiB} MiB)`);
      // mke2fs writes at an offset of the whole disk (-E offset): the partition table does not exist yet.
      await runTool('mkfs.ext4', ['-F', '-q', '-L', 'edgeplane-data', '-E', `offset=${data.startMiB * MiB}`, '-d', tree, target, `${data.sizeMiB * 1024}k`], {
        timeoutMs: 600_000,
      });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  // 3. The GPT last: from here on the disk boots slot A.
  o.say('writing the partition table');
  await writePartitionTable(target, layout);
  const fh = await open(target, 'r');
  await fh.sync().finally(() => fh.close());
  o.say(`installed ${manifest.meta.name ?? 'Edgeplane OS'} ${manifest.meta.version ?? ''} on ${disk.path}`);
  return { disk, layout, keptData: keepData, ...(seed ? { seed: seed.dir } : {}) };
}

/** Replaces the seed on a kept data filesystem (debugfs on the disk at the partition's offset: no partition table yet). */
async function copySeedInto(fs: string, tree: string, seedPaths: string[], work: string): Promise<void> {
  const cmds: string[] = [];
  for (const path of seedPaths) {
    // debugfs's mkdir makes one level: each parent first.
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) cmds.push(`mkdir ${parts.slice(0, i).join('/')}`);
    for (const f of ['user-data', 'meta-data']) {
      const src = join(tree, path, f);
      cmds.push(`rm ${path}/${f}`);
      if (existsSync(src)) cmds.push(`write ${src} ${path}/${f}`);
    }
  }
  const file = join(work, 'debugfs.cmds');
  await writeFile(file, `${cmds.join('\n')}\n`);
  // debugfs reports a missing file to rm or an existing directory to mkdir and goes on; -w fails only when it cannot open the filesystem.
  await runTool('debugfs', ['-w', '-f', file, fs]);
}

const realpathOr = (path: string) => realpath(path).catch(() => path);

/** The disk holding the filesystem mounted at `mountPoint` (from /proc/mounts). */
async function mountedDisk(mountPoint: string, sysRoot: string): Promise<string | undefined> {
  const mounts = await readFile(join(sysRoot, 'proc/mounts'), 'utf8').catch(() => '');
  const line = mounts
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[1] === mountPoint && f[0].startsWith('/dev/'));
  return line ? diskOf(join(sysRoot, line[0]), sysRoot) : undefined;
}
