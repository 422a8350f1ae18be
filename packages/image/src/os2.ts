import { chmod, chown, copyFile, cp, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IMAGE_HEALTH_CHECKS_PATH, oci } from '@edgeplane/agent';
import type { HealthCheck } from '@edgeplane/protocol';
import { installAgent, nodeRuntime } from './agent-bundle.js';
import { FILES_DIR, installBusybox } from './initramfs.js';
import { resolveModules } from './kernel.js';
import { type KubernetesRecord, kubernetesAnnotation } from './kubernetes.js';
import { ImageBuildError, runPipeline, runTool, which } from './tools.js';

const OS2 = join(FILES_DIR, 'os2');

/**
 * Drivers the OS 2 initramfs loads before it mounts the slot and the data partition: disks (virtio,
 * AHCI/SATA, NVMe, USB storage), squashfs (the slots), ext4 (data), overlay and vfat (the ESP; nls_ascii: vfat does not mount without it), and the hardware watchdogs systemd drives
 * (i6300esb: QEMU; iTCO_wdt: Intel chipsets; sp5100_tco: AMD). NICs and everything else load later
 * in the real root, from udev, by modalias. More with `--module`.
 */
export const OS2_INITRAMFS_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'virtio_scsi',
  'ahci',
  'sd_mod',
  'nvme',
  'xhci_pci',
  'usb-storage',
  'uas',
  'crc32c_generic',
  'squashfs',
  'ext4',
  'overlay',
  'vfat',
  'nls_cp437',
  'nls_ascii',
  'i6300esb',
  'iTCO_wdt',
  'sp5100_tco',
];

/**
 * Directories bind-mounted from the data partition (data/state/<path>) by the initramfs: the
 * Kubernetes distributions' and containerd's state (their overlay snapshots cannot sit on an
 * overlay), the agent's state and downloads, root's home. docs/os-images.md has the whole table.
 */
export const PERSISTENT_BINDS = [
  'var/lib/edgeplane',
  'var/lib/containerd',
  'var/lib/rancher',
  'var/lib/kubelet',
  'var/lib/etcd',
  'var/lib/cni',
  'etc/rancher',
  'etc/cni',
  'etc/kubernetes',
  'opt/cni',
  'root',
];

/** Overlays (lower: the slot, upper: data/overlay/<path>/upper): the device's changes to these persist. */
export const PERSISTENT_OVERLAYS = ['etc', 'var', 'usr/local', 'usr/share/ca-certificates'];

export interface Os2TreeOptions {
  name: string;
  version: string;
  agentVersion: string;
  healthChecks?: HealthCheck[];
  airgapBundle?: string;
  files?: Record<string, string>;
  kubernetes?: KubernetesRecord;
}

/** The files the builder adds to the Debian tree: [source in files/os2, path in the image, mode]. */
const OS2_FILES: [string, string, number][] = [
  ['agent-service', 'usr/lib/edgeplane/agent-service', 0o755],
  ['grow-data', 'usr/lib/edgeplane/grow-data', 0o755],
  ['boot-report', 'usr/lib/edgeplane/boot-report', 0o755],
  ['edgeplane-agent.service', 'usr/lib/systemd/system/edgeplane-agent.service', 0o644],
  ['edgeplane-grow-data.service', 'usr/lib/systemd/system/edgeplane-grow-data.service', 0o644],
  ['edgeplane-boot-report.service', 'usr/lib/systemd/system/edgeplane-boot-report.service', 0o644],
  ['edgeplane-cloud-init-once.service', 'usr/lib/systemd/system/edgeplane-cloud-init-once.service', 0o644],
  ['fstab', 'etc/fstab', 0o644],
  ['modules-load.conf', 'usr/lib/modules-load.d/edgeplane-kubernetes.conf', 0o644],
  ['sysctl.conf', 'usr/lib/sysctl.d/90-edgeplane-kubernetes.conf', 0o644],
  ['watchdog.conf', 'usr/lib/systemd/system.conf.d/edgeplane-watchdog.conf', 0o644],
  ['cloud.cfg', 'etc/cloud/cloud.cfg.d/90-edgeplane.cfg', 0o644],
  ['90-edgeplane-dhcp.network', 'usr/lib/systemd/network/90-edgeplane-dhcp.network', 0o644],
  ['wait-online.conf', 'usr/lib/systemd/system/systemd-networkd-wait-online.service.d/edgeplane.conf', 0o644],
];

/** Units enabled in the image: [wants directory, unit]. */
const ENABLED: [string, string][] = [
  ['multi-user.target.wants', 'edgeplane-agent.service'],
  ['multi-user.target.wants', 'edgeplane-grow-data.service'],
  ['multi-user.target.wants', 'edgeplane-boot-report.service'],
  ['multi-user.target.wants', 'chrony-wait.service'],
  ['cloud-init.target.wants', 'edgeplane-cloud-init-once.service'],
  ['multi-user.target.wants', 'systemd-networkd.service'],
  ['sockets.target.wants', 'systemd-networkd.socket'],
  ['network-online.target.wants', 'systemd-networkd-wait-online.service'],
  ['multi-user.target.wants', 'systemd-resolved.service'],
];

/**
 * Units Debian's packages enable that an appliance with a read-only root does not run: apt's and
 * dpkg's timers (no package manager at run time), e2scrub (LVM snapshots the image has none of),
 * cloud-init's hotplug socket (the seed configures NICs at boot only). Masked (linked to /dev/null,
 * systemd.unit(5)) so that no package's own wants link starts them.
 */
export const MASKED_UNITS = [
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'dpkg-db-backup.timer',
  'e2scrub_all.timer',
  'e2scrub_reap.service',
  'cloud-init-hotplugd.socket',
];

/**
 * Kernel module directories (under /usr/lib/modules/<release>/kernel) an edge appliance never loads,
 * left out of the image: sound, cameras/TV/radio (media), wireless and Bluetooth, the discrete and
 * Intel GPU drivers (the console stays on the firmware's framebuffer, efifb/simpledrm, which shows
 * the pairing code; the lab's bochs and virtio-gpu drivers stay), InfiniBand, industrial I/O and
 * staging drivers. About 160 MiB of Debian's 384 MiB of modules. The NIC (drivers/net/ethernet),
 * storage, netfilter, bridge, overlay and watchdog modules all stay. To keep one of these, build
 * with a list that omits it (`pruneModules(tree, dirs)`), see docs/os-images.md.
 */
export const PRUNED_MODULE_DIRS = [
  'sound',
  'drivers/media',
  'drivers/net/wireless',
  'net/wireless',
  'net/mac80211',
  'net/bluetooth',
  'drivers/bluetooth',
  'drivers/gpu/drm/amd',
  'drivers/gpu/drm/radeon',
  'drivers/gpu/drm/nouveau',
  'drivers/gpu/drm/i915',
  'drivers/infiniband',
  'drivers/iio',
  'drivers/staging',
  'drivers/comedi',
  'drivers/isdn',
];

/**
 * Removes `dirs` from every kernel's module tree and rebuilds its indexes (modules.dep, modules.alias
 * and their .bin forms) with the tree's own depmod, run through the tree's dynamic loader (the build
 * host need not have kmod; the tree is the host's architecture: mmdebstrap builds natively). Returns
 * the bytes removed.
 */
export async function pruneModules(tree: string, dirs: string[] = PRUNED_MODULE_DIRS): Promise<number> {
  let freed = 0;
  const modules = join(tree, 'usr/lib/modules');
  for (const release of await readdir(modules).catch(() => [] as string[])) {
    const kernel = join(modules, release, 'kernel');
    for (const dir of dirs) {
      const path = join(kernel, dir);
      if (!(await stat(path).catch(() => undefined))) continue;
      freed += await treeBytes(path);
      await rm(path, { recursive: true, force: true });
    }
    const loader = await treeLoader(tree);
    if (!loader) throw new ImageBuildError('ImageBuildFailed', `the tree has no dynamic loader to run its depmod with (usr/lib/*/ld-linux*.so.*)`);
    await runTool(loader.path, ['--library-path', loader.libDir, '--argv0', 'depmod', join(tree, 'usr/bin/kmod'), '--basedir', tree, release]);
  }
  return freed;
}

/** The tree's own ld.so and its library directory (usr/lib/<triplet>). */
async function treeLoader(tree: string): Promise<{ path: string; libDir: string } | undefined> {
  for (const triplet of await readdir(join(tree, 'usr/lib')).catch(() => [] as string[])) {
    const libDir = join(tree, 'usr/lib', triplet);
    const ld = (await readdir(libDir).catch(() => [] as string[])).find((n) => /^ld-linux.*\.so\.\d+$/.test(n));
    if (ld) return { path: join(libDir, ld), libDir };
  }
  return undefined;
}

/** Unpacks the cached Debian base into `tree` (owners by number, as mmdebstrap recorded them). */
export async function unpackBase(tar: string, tree: string): Promise<void> {
  await which('tar');
  await mkdir(tree, { recursive: true });
  await runTool('tar', ['--extract', '--file', tar, '--directory', tree, '--numeric-owner', '--preserve-permissions', '--exclude=./dev/*'], {
    timeoutMs: 20 * 60_000,
  });
}

/** Kernel release of the tree: its one /usr/lib/modules/<release> with a /boot/vmlinuz-<release>. */
export async function treeKernel(tree: string): Promise<{ release: string; modulesDir: string; vmlinuz: string }> {
  const releases = (await readdir(join(tree, 'usr/lib/modules')).catch(() => [] as string[])).sort();
  const boot = await readdir(join(tree, 'boot')).catch(() => [] as string[]);
  const release = releases.filter((r) => boot.includes(`vmlinuz-${r}`)).at(-1);
  if (!release) throw new ImageBuildError('KernelPackageMissing', 'the package list installs no kernel (add linux-image-amd64)');
  return { release, modulesDir: join(tree, 'usr/lib/modules', release), vmlinuz: join(tree, 'boot', `vmlinuz-${release}`) };
}

/** Adds Edgeplane's part to the Debian tree: Node and the agent, units, layout, configuration. */
export async function customizeTree(tree: string, options: Os2TreeOptions): Promise<void> {
  for (const [from, to, mode] of OS2_FILES) {
    await mkdir(join(tree, to, '..'), { recursive: true });
    await copyFile(join(OS2, from), join(tree, to));
    await chmod(join(tree, to), mode);
  }
  for (const [wants, unit] of ENABLED) {
    await mkdir(join(tree, 'etc/systemd/system', wants), { recursive: true });
    await rm(join(tree, 'etc/systemd/system', wants, unit), { force: true });
    await symlink(`/usr/lib/systemd/system/${unit}`, join(tree, 'etc/systemd/system', wants, unit));
  }
  for (const unit of MASKED_UNITS) {
    await rm(join(tree, 'etc/systemd/system', unit), { force: true });
    await symlink('/dev/null', join(tree, 'etc/systemd/system', unit));
  }
  // Mount points: the data partition, the ESP, and the bind-mount targets on the read-only root.
  for (const dir of ['data', 'boot/efi', ...PERSISTENT_BINDS]) await mkdir(join(tree, dir), { recursive: true });
  // dpkg's path-exclude leaves the directories of the files it dropped: prune the empty ones. The
  // apt sources mmdebstrap wrote name the build machine's mirror; the device has no use for them.
  const dropped = ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale'].map((d) => join(tree, d));
  // path-exclude drops files but not the symlinks packages ship there (base-files' FAQ -> README):
  // they would dangle. Copyright notices stay.
  await runTool('find', [...dropped, '-type', 'l', '!', '-name', 'copyright', '-delete']).catch(() => undefined);
  // dpkg's `*` crosses slashes, so path-include=/usr/share/doc/*/copyright also keeps deeper files
  // named copyright (ca-certificates' examples): only usr/share/doc/<package>/copyright stays.
  await runTool('find', [join(tree, 'usr/share/doc'), '-mindepth', '3', '!', '-type', 'd', '-delete']).catch(() => undefined);
  await runTool('find', [...dropped, '-depth', '-mindepth', '1', '-type', 'd', '-empty', '-delete']).catch(() => undefined);
  await rm(join(tree, 'etc/apt/sources.list'), { force: true });
  for (const n of await readdir(join(tree, 'etc/apt/sources.list.d')).catch(() => [] as string[]))
    await rm(join(tree, 'etc/apt/sources.list.d', n), { force: true });
  // A persistent journal (journald's Storage=auto keeps it when /var/log/journal exists), as Debian sets it up.
  await mkdir(join(tree, 'var/log/journal'), { recursive: true });
  const journalGid = /^systemd-journal:x:(\d+):/m.exec(await readFile(join(tree, 'etc/group'), 'utf8').catch(() => ''))?.[1];
  if (journalGid) await chown(join(tree, 'var/log/journal'), 0, Number(journalGid));
  await chmod(join(tree, 'var/log/journal'), 0o2755);
  await rm(join(tree, 'etc/resolv.conf'), { force: true });
  await symlink('../run/systemd/resolve/stub-resolv.conf', join(tree, 'etc/resolv.conf'));

  await pruneModules(tree);

  await mkdir(join(tree, 'usr/bin'), { recursive: true });
  await copyFile(nodeRuntime(), join(tree, 'usr/bin/node'));
  await chmod(join(tree, 'usr/bin/node'), 0o755);
  await installAgent(tree, options.agentVersion);
  await symlink('/opt/edgeplane/dist/bin.js', join(tree, 'usr/bin/edgeplane')).catch(() => undefined);

  const k8s = options.kubernetes;
  const release = `NAME="${options.name}"\nID=edgeplane\nID_LIKE=debian\nVERSION_ID=${options.version}\nPRETTY_NAME="${options.name} ${options.version}"\n`;
  const files: Record<string, string> = {
    // /etc/os-release is Debian's symlink to this file.
    'usr/lib/os-release': release,
    // slotFilesystem: the agent writes this image's slots as squashfs (device/linux/squashfs.ts).
    [oci.IMAGE_INFO_PATH]: `${JSON.stringify({ name: options.name, version: options.version, slotFilesystem: 'squashfs', ...(k8s ? { kubernetes: k8s } : {}) })}\n`,
    'etc/hostname': 'edgeplane\n',
    'etc/hosts': '127.0.0.1 localhost\n127.0.1.1 edgeplane\n::1 localhost ip6-localhost ip6-loopback\n',
    ...(options.healthChecks?.length ? { [IMAGE_HEALTH_CHECKS_PATH]: `${JSON.stringify(options.healthChecks, null, 2)}\n` } : {}),
    ...(k8s ? { 'usr/lib/edgeplane/kubernetes': `${kubernetesAnnotation(k8s)}\n` } : {}),
    ...options.files,
  };
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(tree, path, '..'), { recursive: true });
    await rm(join(tree, path), { force: true });
    await writeFile(join(tree, path), content);
  }
  if (options.airgapBundle) {
    await cp(options.airgapBundle, join(tree, 'opt/edgeplane/airgap'), { recursive: true });
    for (const name of await readdir(join(options.airgapBundle, 'bin')).catch(() => [] as string[])) {
      await copyFile(join(options.airgapBundle, 'bin', name), join(tree, 'usr/bin', name));
      await chmod(join(tree, 'usr/bin', name), 0o755);
    }
  }
}

/**
 * The OS 2 initramfs: busybox, the drivers in load order (from the tree's own kernel), the list of
 * bind mounts and files/os2/initramfs-init. Its own small init rather than Debian's initramfs-tools:
 * it is the same proven PARTLABEL lookup as before plus the persistence mounts, builds in a second
 * outside any chroot (so changing it does not rebuild the cached Debian base), and is reproducible
 * (sorted cpio, fixed mtimes, gzip without a timestamp).
 */
export async function buildOs2Initramfs(work: string, modulesDir: string, extraModules: string[], output: string, epoch: number): Promise<string[]> {
  const modules = await resolveModules(modulesDir, [...OS2_INITRAMFS_MODULES, ...extraModules]);
  const tree = join(work, 'initramfs');
  await rm(tree, { recursive: true, force: true });
  for (const dir of ['bin', 'dev', 'proc', 'sys', 'newroot', 'etc', 'lib/modules']) await mkdir(join(tree, dir), { recursive: true });
  await installBusybox(tree);
  const names: string[] = [];
  for (const path of modules) {
    const name = path.split('/').pop() as string;
    await copyFile(path, join(tree, 'lib/modules', name));
    names.push(name);
  }
  await writeFile(join(tree, 'lib/modules/load-order'), `${names.join('\n')}\n`);
  await writeFile(join(tree, 'etc/edgeplane-binds'), `${PERSISTENT_BINDS.join('\n')}\n`);
  await writeFile(join(tree, 'etc/edgeplane-overlays'), `${PERSISTENT_OVERLAYS.join('\n')}\n`);
  await copyFile(join(OS2, 'initramfs-init'), join(tree, 'init'));
  await chmod(join(tree, 'init'), 0o755);
  await which('cpio');
  await runPipeline(
    `find . -exec touch -h -d @${epoch} {} + && find . | LC_ALL=C sort | cpio --quiet --reproducible -o -H newc --owner=0:0 | gzip -n -6 > '${output}'`,
    tree,
  );
  await rm(tree, { recursive: true, force: true });
  return names;
}

/** Bytes the tree occupies (allocated blocks, as mkfs.ext4 -d will need them). */
export async function treeBytes(tree: string): Promise<number> {
  const { stdout } = await runTool('du', ['-s', '--block-size=1', tree]);
  return Number(stdout.split(/\s/)[0]);
}
