import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';

const run = promisify(execFile);
const sh = async (cmd: string, args: string[]) => (await run(cmd, args, { maxBuffer: 256 * 1024 * 1024, timeout: 300_000 })).stdout;

// A cold build runs mmdebstrap (about 3 min on an idle 2-core machine, 8 under load); every later build
// with the same package list reuses the cached Debian base (EDGEPLANE_IMAGE_CACHE or ~/.cache, outside
// the clone) and takes the time of unpacking it, adding the agent and compressing the layer.
const BUILD_TIMEOUT = 20 * 60_000;

/** Files of the image the tests read. */
const READ = [
  'usr/lib/edgeplane/image.json',
  'usr/lib/systemd/system/k3s.service',
  'usr/lib/modules-load.d/edgeplane-kubernetes.conf',
  'usr/lib/systemd/system.conf.d/edgeplane-watchdog.conf',
  'usr/lib/systemd/system/edgeplane-agent.service',
  'etc/cloud/cloud.cfg.d/90-edgeplane.cfg',
  'etc/fstab',
  'etc/machine-id',
];

interface Built {
  digest: string;
  base: string;
  kubernetes?: { distribution: string; version: string };
  sizes: { layerBytes: number; uncompressedBytes: number; treeBytes: number; slotBytes?: number; slotUsedBytes?: number };
  cache: { dir: string; baseKey: string; base: boolean; layer: boolean };
  layout?: { partitions: { name: string; number: number; startMiB: number; sizeMiB: number }[] };
}

/**
 * `edgeplane image build` of Edgeplane OS 2 (the Debian default) as a user runs it, with a tiny
 * shell script standing in for the k3s binary (no real k3s is available offline): the root
 * filesystem's contents, the Kubernetes record, the disk, the cache, and reproducibility.
 * Booting it is the lab's part (test/lab).
 */
describe('edgeplane image build (Edgeplane OS 2)', () => {
  let dir: string;
  let built: Built;
  let result: { code: number | null; out: string; stdout: string };
  let listing: string;
  let manifest: { annotations: Record<string, string>; layers: { digest: string; mediaType: string }[]; config: { digest: string } };
  const out = () => join(dir, 'out');
  const blob = (digest: string) => join(out(), 'oci/blobs', digest.replace(':', '/'));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-image-os2-'));
    const k3s = join(dir, 'k3s');
    await writeFile(k3s, '#!/bin/sh\necho "k3s version v1.30.4+k3s1 (fake0000)"\necho "go version go1.22.5"\n');
    await chmod(k3s, 0o755);
    result = await cli(['image', 'build', '--version', '2.0.0', '--disk', '--kubernetes', `k3s=${k3s}`, '-o', out()]);
    if (result.code !== 0) return;
    built = JSON.parse(await readFile(join(out(), 'build.json'), 'utf8'));
    manifest = JSON.parse(await readFile(blob(built.digest), 'utf8'));
    // GNU tar recognises the layer's compression (zstd here) by its first bytes.
    listing = await sh('tar', ['-tvf', blob(manifest.layers[0].digest), '--numeric-owner']);
    // The few files the tests read, in one pass over the layer.
    await sh('tar', ['-xf', blob(manifest.layers[0].digest), '-C', dir, ...READ.map((p) => `./${p}`)]);
  }, BUILD_TIMEOUT);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const has = (path: string) => new RegExp(` \\./${path.replace(/[.+]/g, '\\$&')}( -> .*)?$`, 'm').test(listing);
  const entry = (path: string) => listing.split('\n').find((l) => l.endsWith(` ./${path}`) || l.includes(` ./${path} -> `)) ?? '';
  const fileText = (path: string) => readFile(join(dir, path), 'utf8');

  it('builds and prints the digest, the Kubernetes it carries, the sizes and the cache', () => {
    expect(result.code, result.out).toBe(0);
    expect(result.stdout).toContain(`digest:    ${built.digest}`);
    expect(result.stdout).toContain('kubernetes: k3s v1.30.4+k3s1');
    // The slot is sized from the image (its squashfs plus headroom, in 64 MiB steps).
    const sizes = result.stdout.match(/sizes: {5}layer \d+ MiB compressed, root filesystem \d+ MiB; slot \d+ MiB used of (\d+) MiB/);
    expect(sizes, result.stdout).not.toBeNull();
    expect(Number(sizes![1]) * 1024 * 1024).toBe(built.sizes.slotBytes);
    expect(built.sizes.slotBytes! % (64 * 1024 * 1024)).toBe(0);
    expect(built.base).toBe('debian');
    expect(built.sizes.layerBytes).toBeGreaterThan(50 * 1024 * 1024);
    expect(built.sizes.slotUsedBytes).toBeLessThan(built.sizes.slotBytes!);
    // squashfs: the slot image is a fraction of the tree (gzip), and the headroom is 25%.
    expect(built.sizes.slotUsedBytes).toBeLessThan(built.sizes.treeBytes / 2);
    expect(built.sizes.slotBytes).toBeGreaterThanOrEqual(built.sizes.slotUsedBytes! * 1.25);
    expect(result.out).toContain('0/7 Debian base');
  });

  it('records the distribution as the io.edgeplane.kubernetes annotation and config label', async () => {
    expect(manifest.annotations['io.edgeplane.kubernetes']).toBe('k3s v1.30.4+k3s1');
    const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8'));
    expect(config.config.Labels['io.edgeplane.kubernetes']).toBe('k3s v1.30.4+k3s1');
    expect(JSON.parse(await fileText('usr/lib/edgeplane/image.json'))).toEqual({
      name: 'Edgeplane OS',
      version: '2.0.0',
      slotFilesystem: 'squashfs',
      kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' },
    });
    expect(entry('usr/bin/k3s')).toMatch(/^-rwxr-xr-x 0\/0 /);
    expect(await fileText('usr/lib/systemd/system/k3s.service')).toContain('ExecStart=/usr/bin/k3s server');
  });

  it('is a Debian system: systemd as init, containerd, runc, cloud-init, chrony, the Kubernetes networking tools', () => {
    expect(entry('usr/sbin/init')).toContain('-> /lib/systemd/systemd');
    for (const path of [
      'usr/bin/containerd',
      'usr/sbin/runc',
      'usr/bin/cloud-init',
      'usr/sbin/chronyd',
      'usr/sbin/iptables',
      'usr/sbin/nft',
      'usr/sbin/conntrack',
      'usr/sbin/ethtool',
      'usr/bin/socat',
      'usr/bin/growpart',
      'usr/sbin/mke2fs',
      'usr/bin/grub-editenv',
      'usr/bin/node',
      'opt/edgeplane/dist/bin.js',
      'etc/ssl/certs/ca-certificates.crt',
    ])
      expect(has(path), path).toBe(true);
  });

  it('carries the kernel with the edge NIC and storage drivers, and the builder-made initramfs', () => {
    const release = /usr\/lib\/modules\/([^/]+)\/modules\.dep$/m.exec(listing)?.[1];
    expect(release).toBeTruthy();
    for (const mod of [
      'drivers/net/ethernet/intel/igc/igc.ko',
      'drivers/net/ethernet/intel/e1000e/e1000e.ko',
      'drivers/net/ethernet/intel/ixgbe/ixgbe.ko',
      'drivers/net/ethernet/intel/i40e/i40e.ko',
      'drivers/net/ethernet/realtek/r8169.ko',
      'drivers/net/virtio_net.ko',
      'drivers/nvme/host/nvme.ko',
      'drivers/ata/ahci.ko',
      'drivers/usb/storage/usb-storage.ko',
      'drivers/scsi/sr_mod.ko',
      'drivers/watchdog/i6300esb.ko',
    ])
      expect(has(`usr/lib/modules/${release}/kernel/${mod}`), mod).toBe(true);
    expect(listing).toMatch(/ \.\/usr\/lib\/firmware\/rtl_nic\/rtl8168/);
    // Modules an edge appliance never loads are left out (nothing beneath their directories), and
    // depmod rebuilt the indexes.
    for (const gone of ['sound', 'drivers/media', 'drivers/net/wireless', 'net/mac80211', 'drivers/gpu/drm/amd', 'drivers/gpu/drm/nouveau'])
      expect(listing.includes(` ./usr/lib/modules/${release}/kernel/${gone}/`), gone).toBe(false);
    expect(listing.includes(` ./usr/lib/modules/${release}/kernel/drivers/gpu/drm/`)).toBe(true);
    expect(has(`usr/lib/modules/${release}/kernel/drivers/gpu/drm/tiny/bochs.ko`)).toBe(true);
    expect(has(`usr/lib/modules/${release}/modules.alias.bin`)).toBe(true);
    // The layer is zstd: the image carries the zstd program its agent unpacks the next image with.
    expect(manifest.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(has('usr/bin/zstd')).toBe(true);
    expect(entry('boot/vmlinuz')).toContain(`-> vmlinuz-${release}`);
    expect(has('boot/initrd.img')).toBe(true);
  });

  it('has the layout, first-boot and watchdog configuration', async () => {
    expect(await fileText('usr/lib/modules-load.d/edgeplane-kubernetes.conf')).toMatch(/^overlay\nbr_netfilter$/m);
    expect(await fileText('usr/lib/systemd/system.conf.d/edgeplane-watchdog.conf')).toContain('RuntimeWatchdogSec=30s');
    const unit = await fileText('usr/lib/systemd/system/edgeplane-agent.service');
    expect(unit).toMatch(/^After=.*time-sync\.target/m);
    expect(unit).toContain('Environment=NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt');
    // The serial console has the agent's output; the screen gets its own write (once each).
    expect(unit).toMatch(/^Environment=EDGEPLANE_PAIRING_CONSOLES=\/dev\/tty0$/m);
    for (const wants of ['edgeplane-agent.service', 'edgeplane-grow-data.service', 'chrony-wait.service', 'systemd-networkd.service'])
      expect(has(`etc/systemd/system/multi-user.target.wants/${wants}`), wants).toBe(true);
    expect(await fileText('etc/cloud/cloud.cfg.d/90-edgeplane.cfg')).toContain('datasource_list: [ NoCloud, None ]');
    expect(await fileText('etc/fstab')).toMatch(/^tmpfs +\/tmp +tmpfs/m);
    for (const dir of ['data', 'var/lib/rancher', 'var/lib/kubelet', 'var/lib/containerd', 'etc/rancher', 'etc/cni', 'opt/cni', 'var/lib/cni', 'var/lib/etcd'])
      expect(has(`${dir}/`), dir).toBe(true);
  });

  it('leaves out documentation, translations, apt state and the build host', async () => {
    expect(listing).not.toMatch(/ \.\/usr\/share\/man\/./);
    expect(listing).not.toMatch(/ \.\/usr\/share\/doc\/[^/\n]+\/(?!copyright$)[^\n]*[^/\n]$/m); // files; empty directories are pruned too
    expect(listing).not.toMatch(/ \.\/usr\/share\/doc\/[^\n]*\/examples\/$/m);
    expect(listing).not.toMatch(/ \.\/etc\/apt\/sources\.list\.d\/./); // the build machine's mirror stays off the device
    expect(listing).toMatch(/ \.\/usr\/share\/doc\/systemd\/copyright$/m);
    expect(listing).not.toMatch(/ \.\/var\/lib\/apt\/lists\/./);
    expect(listing).not.toMatch(/ \.\/var\/cache\/apt\/./);
    expect(entry('etc/resolv.conf')).toContain('-> ../run/systemd/resolve/stub-resolv.conf');
    expect(await fileText('etc/machine-id')).toBe('');
  });

  it("keeps Debian's owners (numeric) in the layer", () => {
    expect(entry('etc/shadow')).toMatch(/^-rw-r----- 0\/42 /); // group shadow
    expect(listing).toMatch(/^d\S+ \d+\/\d+ .* \.\/var\/lib\/chrony\/$/m);
    expect(entry('var/lib/chrony/')).not.toMatch(/ 0\/0 /); // _chrony
  });

  it('writes the disk with data last, so it can grow, and root-a as a squashfs slot naming the digest', async () => {
    const parts = built.layout!.partitions;
    const data = parts.find((p) => p.name === 'data')!;
    expect(parts.map((p) => [p.number, p.name])).toEqual([
      [1, 'esp'],
      [2, 'root-a'],
      [3, 'root-b'],
      [4, 'data'],
      [5, 'recovery'],
    ]);
    expect(Math.max(...parts.map((p) => p.startMiB))).toBe(data.startMiB);
    const disk = join(out(), 'disk.img');
    // unsquashfs (4.5.1) reads no offset into a file: root-a is copied out of the disk first.
    const a = parts.find((p) => p.name === 'root-a')!;
    const rootA = join(dir, 'root-a.img');
    await sh('dd', [`if=${disk}`, `of=${rootA}`, 'bs=1M', `skip=${a.startMiB}`, `count=${a.sizeMiB}`, 'status=none']);
    expect((await readFile(rootA)).subarray(0, 4).toString()).toBe('hsqs');
    expect(JSON.parse(await sh('unsquashfs', ['-cat', rootA, 'usr/lib/edgeplane/slot.json']))).toMatchObject({ digest: built.digest, version: '2.0.0' });
    expect(JSON.parse(await sh('unsquashfs', ['-cat', rootA, 'usr/lib/edgeplane/image.json']))).toMatchObject({ slotFilesystem: 'squashfs' });
    // Directories extract whole (their files' data decompressed and checked by unsquashfs).
    await sh('unsquashfs', ['-no-progress', '-d', join(dir, 'root-a-tree'), rootA, 'usr/lib/edgeplane', 'etc']);
    await rm(rootA, { force: true });
  });

  it(
    'builds the same inputs again from the cache, to the same digest',
    async () => {
      const k3s = join(dir, 'k3s');
      const again = await cli(['image', 'build', '--version', '2.0.0', '--kubernetes', `k3s=${k3s}`, '-o', join(dir, 'again'), '--json']);
      expect(again.code, again.out).toBe(0);
      const second = JSON.parse(again.stdout) as Built;
      expect(second.cache).toMatchObject({ base: true, layer: true, baseKey: built.cache.baseKey });
      expect(second.digest).toBe(built.digest);
    },
    BUILD_TIMEOUT,
  );

  it(
    'refuses a --slot-size the squashfs slot image does not fit with ImageTooLarge, naming the size to ask for, and writes no disk',
    async () => {
      const small = join(dir, 'small');
      const refused = await cli(['image', 'build', '--version', '2.0.0', '--disk', '--slot-size', '64', '-o', small]);
      expect(refused.code, refused.out).toBe(1);
      const m =
        /Error: image build failed \(ImageTooLarge\): the root filesystem is \d+ MiB, (\d+) MiB as a squashfs slot; the slot has 64 MiB \(raise --slot-size to at least (\d+)\)/.exec(
          refused.out,
        );
      expect(m, refused.out).not.toBeNull();
      expect(m![1]).toBe(m![2]);
      expect(Number(m![1])).toBeGreaterThan(64);
      expect(existsSync(join(small, 'disk.img'))).toBe(false);
      expect(existsSync(join(small, 'build.json'))).toBe(false);
    },
    BUILD_TIMEOUT,
  );

  it('refuses bad inputs before building anything', async () => {
    const bad = join(dir, 'bad');
    const noFile = await cli(['image', 'build', '--version', '1', '-o', bad, '--packages', join(dir, 'missing.txt')]);
    expect(noFile.code).toBe(1);
    expect(noFile.out).toContain(`Error: --packages ${join(dir, 'missing.txt')} does not exist`);
    const badK8s = await cli(['image', 'build', '--version', '1', '-o', bad, '--kubernetes', 'microk8s=./x']);
    expect(badK8s.code).toBe(1);
    expect(badK8s.out).toContain('Error: --kubernetes microk8s=./x: expected NAME=FILE');
    const mixed = await cli(['image', 'build', '--version', '1', '-o', bad, '--base', 'busybox', '--kubernetes', `k3s=${join(dir, 'k3s')}`]);
    expect(mixed.code).toBe(1);
    expect(mixed.out).toContain('Error: --packages, --kubernetes and --refresh-base build the Debian base: drop --base busybox');
    expect(existsSync(bad)).toBe(false);
  });
});
