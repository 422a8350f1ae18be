import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudConfig, InstallSpec } from '@edgeplane/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MiB } from '../device/linux/os-disk.js';
import { type BlockDisk, chooseDisk, diskOf, installLayout, listDisks } from './disks.js';
import { InstallError, installOs, readInstallSeed } from './install-os.js';

const GiB = 1024 * MiB;
const disk = (name: string, gib: number, extra: Partial<BlockDisk> = {}): BlockDisk => ({
  name,
  path: `/dev/${name}`,
  sizeBytes: gib * GiB,
  removable: false,
  readOnly: false,
  ...extra,
});

describe('install disk choice', () => {
  it('takes the largest non-removable disk and says why', () => {
    const c = chooseDisk([disk('sda', 240), disk('nvme0n1', 480), disk('sdb', 960, { removable: true })], { exclude: [] });
    expect(c).toMatchObject({ ok: true, disk: { name: 'nvme0n1' } });
    expect(c.ok && c.why).toContain('largest non-removable disk');
  });

  it('never picks a removable disk on its own, even when it is the only disk besides the medium', () => {
    const c = chooseDisk([disk('sdb', 64, { removable: true }), disk('sdc', 4, { removable: true })], {
      exclude: [{ name: 'sdc', why: 'the install medium' }],
    });
    expect(c.ok).toBe(false);
    expect(!c.ok && c.reason).toMatch(/no disk to install to: .*non-removable.*\/dev\/sdb \(64\.0 GiB, removable\)/);
  });

  it('refuses to guess between two disks of the same largest size, naming both and the way out', () => {
    const c = chooseDisk([disk('sda', 480, { model: 'SSD A' }), disk('sdb', 480, { model: 'SSD B' }), disk('sdc', 120)], { exclude: [] });
    expect(c.ok).toBe(false);
    const reason = !c.ok ? c.reason : '';
    expect(reason).toContain('2 disks of the same size');
    expect(reason).toContain('/dev/sda (480.0 GiB, SSD A)');
    expect(reason).toContain('/dev/sdb (480.0 GiB, SSD B)');
    expect(reason).toContain('install.device');
  });

  it('a tie below the largest disk is no reason to refuse', () => {
    expect(chooseDisk([disk('sda', 100), disk('sdb', 100), disk('sdc', 200)], { exclude: [] })).toMatchObject({ ok: true, disk: { name: 'sdc' } });
  });

  it('honours install.device, also over a larger disk and for a removable one the technician named', () => {
    const disks = [disk('sda', 100), disk('sdb', 200), disk('sdc', 32, { removable: true })];
    expect(chooseDisk(disks, { device: { asGiven: '/dev/sda', name: 'sda' }, exclude: [] })).toMatchObject({ ok: true, disk: { name: 'sda' } });
    expect(chooseDisk(disks, { device: { asGiven: '/dev/disk/by-id/usb-x', name: 'sdc' }, exclude: [] })).toMatchObject({
      ok: true,
      disk: { name: 'sdc' },
      why: 'install.device in the user-data names /dev/disk/by-id/usb-x',
    });
  });

  it('refuses an install.device that is missing, a partition, read-only or the install medium', () => {
    const disks = [disk('sda', 100), disk('sdb', 8, { readOnly: true }), disk('sdc', 4)];
    const exclude = [{ name: 'sdc', why: 'the install medium' }];
    const refused = (device: { asGiven: string; name?: string; isPartition?: boolean }) => {
      const c = chooseDisk(disks, { device, exclude });
      return c.ok ? '' : c.reason;
    };
    expect(refused({ asGiven: '/dev/nvme0n1' })).toMatch(/install.device \/dev\/nvme0n1 is not a disk on this machine \(disks here: \/dev\/sda/);
    expect(refused({ asGiven: '/dev/sda2', name: 'sda', isPartition: true })).toMatch(/is a partition; name the whole disk/);
    expect(refused({ asGiven: '/dev/sdb', name: 'sdb' })).toMatch(/is read-only/);
    expect(refused({ asGiven: '/dev/sdc', name: 'sdc' })).toMatch(/is the install medium; it cannot be the install target/);
  });

  it('the data partition fills the disk; a disk too small for the layout has none', () => {
    const layout = installLayout(8 * GiB, { espMiB: 64, slotMiB: 512 })!;
    const data = layout.partitions.find((p) => p.name === 'data')!;
    expect(data.startMiB + data.sizeMiB + 1).toBe(8192);
    expect(layout.sizeMiB).toBe(8192);
    expect(installLayout(2 * GiB, { espMiB: 64, slotMiB: 512 })).toBeUndefined();
  });
});

describe('the user-data install section', () => {
  it('validates install.device and install.keepData with clear errors', () => {
    expect(InstallSpec.parse({})).toEqual({ keepData: false });
    expect(InstallSpec.parse({ device: '/dev/disk/by-id/nvme-Samsung_SSD_980_S64', keepData: true })).toMatchObject({ keepData: true });
    const bad = (v: unknown) => InstallSpec.safeParse(v).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    expect(bad({ device: 'sda' })).toEqual([expect.stringContaining('device: must be a device path under /dev')]);
    expect(bad({ device: '/dev/../etc/passwd' })).toEqual([expect.stringContaining('must not contain ".."')]);
    expect(bad({ device: '/dev/sda; rm -rf /' })).toHaveLength(1);
    expect(bad({ keepData: 'yes' })).toEqual([expect.stringContaining('keepData')]);
    expect(bad({ disk: '/dev/sda' })).toEqual([expect.stringContaining('Unrecognized key')]);
    const doc = { edgeplane: { server: 'https://cp.example.com', token: 't' }, install: { device: 'vda' } };
    expect(CloudConfig.safeParse(doc).success).toBe(false);
  });
});

/** A fake machine: /sys/block and /dev under a directory, disks as sparse files. */
function fakeMachine(root: string, disks: { name: string; bytes: number; removable?: boolean; ro?: boolean; model?: string }[]) {
  for (const d of disks) {
    const sys = join(root, 'sys/block', d.name);
    mkdirSync(join(sys, 'device'), { recursive: true });
    writeFileSync(join(sys, 'size'), `${d.bytes / 512}\n`);
    writeFileSync(join(sys, 'removable'), d.removable ? '1\n' : '0\n');
    writeFileSync(join(sys, 'ro'), d.ro ? '1\n' : '0\n');
    if (d.model) writeFileSync(join(sys, 'device/model'), `${d.model}   \n`);
    mkdirSync(join(root, 'sys/class/block'), { recursive: true });
    symlinkSync(sys, join(root, 'sys/class/block', d.name));
    mkdirSync(join(root, 'dev'), { recursive: true });
    writeFileSync(join(root, 'dev', d.name), '');
    truncateSync(join(root, 'dev', d.name), d.bytes);
  }
}

const run = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

describe('installOs on a disk file (no QEMU)', () => {
  let root: string;
  let media: string;
  let seed: string;
  const lines: string[] = [];
  const say = (l: string) => lines.push(l);
  const SIZES = { espMiB: 34, slotMiB: 16 };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'ep-install-'));
    lines.length = 0;
    media = join(root, 'media');
    mkdirSync(join(media, 'edgeplane'), { recursive: true });
    // The medium: a slot image with a marker file, an ESP image, the manifest.
    mkdirSync(join(root, 'tree/usr/lib/edgeplane'), { recursive: true });
    writeFileSync(join(root, 'tree/usr/lib/edgeplane/image.json'), '{"name":"Edgeplane OS","version":"1.0.0"}\n');
    run('mkfs.ext4', ['-F', '-q', '-d', join(root, 'tree'), join(media, 'edgeplane/root.img'), `${SIZES.slotMiB * 1024}k`]);
    run('mkfs.vfat', ['-C', '-n', 'EDGEPLANE', join(media, 'edgeplane/esp.img'), String(SIZES.espMiB * 1024)]);
    writeFileSync(
      join(media, 'edgeplane/install.json'),
      JSON.stringify({ ...SIZES, meta: { digest: 'sha256:1', image: 'x', name: 'Edgeplane OS', version: '1.0.0' } }),
    );
    seed = join(root, 'seed');
    mkdirSync(seed);
    writeFileSync(join(seed, 'user-data'), '#cloud-config\nedgeplane:\n  server: https://cp.example.com\n  token: eprt_x\n');
    writeFileSync(join(seed, 'meta-data'), 'instance-id: i-1\n');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const dataFs = (layout: { partitions: { name: string; startMiB: number }[] }, file: string) =>
    `${file}?offset=${layout.partitions.find((p) => p.name === 'data')!.startMiB * MiB}`;

  it('lists disks from sysfs and maps a partition to its disk', async () => {
    fakeMachine(root, [
      { name: 'vda', bytes: 2 * GiB, model: 'QEMU HARDDISK' },
      { name: 'sr0', bytes: GiB, removable: true },
      { name: 'loop0', bytes: GiB },
    ]);
    mkdirSync(join(root, 'sys/block/vda/vda1'));
    writeFileSync(join(root, 'sys/block/vda/vda1/partition'), '1\n');
    symlinkSync(join(root, 'sys/block/vda/vda1'), join(root, 'sys/class/block/vda1'));
    expect(await listDisks(root)).toEqual([{ name: 'vda', path: '/dev/vda', sizeBytes: 2 * GiB, removable: false, readOnly: false, model: 'QEMU HARDDISK' }]);
    expect(await diskOf('/dev/vda1', root)).toBe('vda');
    expect(await diskOf('/dev/vda', root)).toBe('vda');
  });

  it('writes the A/B layout with the GPT, the image in slot A and recovery, and the seed on a fresh data partition', async () => {
    fakeMachine(root, [{ name: 'vda', bytes: GiB }]);
    const r = await installOs({ media, seedDirs: [join(root, 'nothing'), seed], sysRoot: root, say });
    const file = join(root, 'dev/vda');
    const gpt = JSON.parse(run('sfdisk', ['--json', file])).partitiontable;
    expect(gpt.partitions.map((p: { name: string }) => p.name)).toEqual(['esp', 'root-a', 'root-b', 'data', 'recovery']);
    for (const slot of ['root-a', 'recovery']) {
      const at = r.layout.partitions.find((p) => p.name === slot)!.startMiB * MiB;
      expect(run('debugfs', ['-R', 'cat /usr/lib/edgeplane/image.json', `${file}?offset=${at}`])).toContain('"version":"1.0.0"');
    }
    expect(run('debugfs', ['-R', 'cat /seed/user-data', dataFs(r.layout, file)])).toContain('token: eprt_x');
    expect(lines.join('\n')).toMatch(/target: \/dev\/vda \(1\.0 GiB\): the largest non-removable disk/);
  });

  it('installing again erases the earlier install (data made anew) unless install.keepData; an interrupted install starts over', async () => {
    fakeMachine(root, [{ name: 'vda', bytes: GiB }]);
    const file = join(root, 'dev/vda');
    const first = await installOs({ media, seedDirs: [seed], sysRoot: root, say });
    const fs = dataFs(first.layout, file);
    writeFileSync(join(root, 'identity'), 'device key');
    run('debugfs', ['-w', '-R', `write ${join(root, 'identity')} identity`, fs]);
    // Again without keepData: the identity is gone.
    await installOs({ media, seedDirs: [seed], sysRoot: root, say });
    expect(run('debugfs', ['-R', 'ls -l /', fs])).not.toContain('identity');
    // With keepData: kept, and the new seed replaces the old one.
    run('debugfs', ['-w', '-R', `write ${join(root, 'identity')} identity`, fs]);
    writeFileSync(join(seed, 'user-data'), '#cloud-config\nedgeplane:\n  server: https://cp2.example.com\n  token: eprt_y\ninstall:\n  keepData: true\n');
    // An install interrupted after its first step (both GPTs zeroed): keepData still finds the data filesystem.
    spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', 'count=1', 'conv=notrunc'], { encoding: 'utf8' });
    const kept = await installOs({ media, seedDirs: [seed], sysRoot: root, say });
    expect(kept.keptData).toBe(true);
    expect(run('debugfs', ['-R', 'cat /identity', fs])).toBe('device key');
    expect(run('debugfs', ['-R', 'cat /seed/user-data', fs])).toContain('cp2.example.com');
    expect(JSON.parse(run('sfdisk', ['--json', file])).partitiontable.partitions).toHaveLength(5);
  });

  it("the seed goes where the image looks for it (install.json seedPaths: the Debian base's /var overlay), fresh and kept", async () => {
    fakeMachine(root, [{ name: 'vda', bytes: GiB }]);
    const nocloud = 'overlay/var/upper/lib/cloud/seed/nocloud';
    const manifest = JSON.parse(readFileSync(join(media, 'edgeplane/install.json'), 'utf8'));
    writeFileSync(join(media, 'edgeplane/install.json'), JSON.stringify({ ...manifest, seedPaths: [nocloud] }));
    const file = join(root, 'dev/vda');
    const r = await installOs({ media, seedDirs: [seed], sysRoot: root, say });
    const fs = dataFs(r.layout, file);
    expect(run('debugfs', ['-R', `cat ${nocloud}/user-data`, fs])).toContain('token: eprt_x');
    expect(run('debugfs', ['-R', `cat ${nocloud}/meta-data`, fs])).toContain('instance-id: i-1');
    // keepData on a data filesystem without that directory yet: made level by level.
    run('mkfs.ext4', [
      '-F',
      '-q',
      '-L',
      'edgeplane-data',
      '-E',
      `offset=${r.layout.partitions.find((p) => p.name === 'data')!.startMiB * MiB}`,
      file,
      '65536k',
    ]);
    writeFileSync(join(seed, 'user-data'), '#cloud-config\nedgeplane:\n  server: https://cp3.example.com\ninstall:\n  keepData: true\n');
    await installOs({ media, seedDirs: [seed], sysRoot: root, say });
    expect(run('debugfs', ['-R', `cat ${nocloud}/user-data`, fs])).toContain('cp3.example.com');
  });

  it('install.keepData on a disk without an Edgeplane data partition is refused before anything is written', async () => {
    fakeMachine(root, [{ name: 'vda', bytes: GiB }]);
    writeFileSync(join(seed, 'user-data'), '#cloud-config\nedgeplane:\n  server: https://cp.example.com\ninstall:\n  keepData: true\n');
    const file = join(root, 'dev/vda');
    writeFileSync(file, Buffer.from('an old MBR'), { flag: 'r+' });
    await expect(installOs({ media, seedDirs: [seed], sysRoot: root, say })).rejects.toThrow(/install.keepData: \/dev\/vda has no Edgeplane data partition/);
    const head = Buffer.alloc(10);
    const fd = openSync(file, 'r');
    readSync(fd, head, 0, 10, 0);
    closeSync(fd);
    expect(head.toString()).toBe('an old MBR');
  });

  it('two disks of the same size: refused with the reason, nothing written; install.device picks one', async () => {
    fakeMachine(root, [
      { name: 'vda', bytes: GiB },
      { name: 'vdb', bytes: GiB },
    ]);
    await expect(installOs({ media, seedDirs: [seed], sysRoot: root, say })).rejects.toThrow(InstallError);
    await expect(installOs({ media, seedDirs: [seed], sysRoot: root, say })).rejects.toThrow(
      /2 disks of the same size are candidates: \/dev\/vda .*\/dev\/vdb/,
    );
    for (const d of ['vda', 'vdb']) expect(spawnSync('sfdisk', ['--json', join(root, 'dev', d)]).status).not.toBe(0);
    writeFileSync(join(seed, 'user-data'), '#cloud-config\nedgeplane:\n  server: https://cp.example.com\ninstall:\n  device: /dev/vdb\n');
    const r = await installOs({ media, seedDirs: [seed], sysRoot: root, say });
    expect(r.disk.name).toBe('vdb');
    expect(spawnSync('sfdisk', ['--json', join(root, 'dev/vda')]).status).not.toBe(0);
  });

  it('refuses invalid user-data before touching a disk', async () => {
    writeFileSync(join(seed, 'user-data'), '#cloud-config\nedgeplane:\n  server: https://cp.example.com\ninstall:\n  device: sda\n');
    await expect(readInstallSeed([seed])).rejects.toThrow(/invalid install section: install.device: must be a device path under \/dev/);
    writeFileSync(join(seed, 'user-data'), '#cloud-config\nedgeplane:\n  server: ftp://cp.example.com\n');
    await expect(readInstallSeed([seed])).rejects.toThrow(/would not register the device: edgeplane.server/);
  });
});
