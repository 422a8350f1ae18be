import { copyFile, mkdir, mkdtemp, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AGENT_VERSION, type BootLoader, type OsDiskOptions, oci, SIMULATED_KUBERNETES_MARKER } from '@edgeplane/agent';
import type { HealthCheck } from '@edgeplane/protocol';
import { debianBase, defaultCacheDir, readPackageList, sourceDateEpoch } from './debian.js';
import { writeOsDisk } from './disk.js';
import { type DiskLayout, diskLayout, type LayoutSizes, MiB, partitionMiB } from './disk-layout.js';
import { HostBinaries } from './host-binaries.js';
import { buildInitramfs } from './initramfs.js';
import { INSTALLER_MODULES, OS2_SEED_PATHS, writeInstallerIso } from './installer.js';
import { DEFAULT_MODULES, findKernelPackage, kernelSigned, resolveModules, unpackKernel } from './kernel.js';
import { installKubernetes, KUBERNETES_ANNOTATION, type KubernetesBinary, type KubernetesRecord, kubernetesAnnotation } from './kubernetes.js';
import { writeTreeImage } from './layer.js';
import { buildOs2Initramfs, customizeTree, treeBytes, treeKernel, unpackBase } from './os2.js';
import { buildRootfs } from './rootfs.js';
import { ImageBuildError, runTool, which } from './tools.js';

/**
 * Room a default slot leaves beyond what this image needs, for the images to come: an update never
 * resizes slots, so later images (a newer kernel, a Kubernetes binary) must fit the same size.
 */
export const SLOT_HEADROOM = 0.25;
/** Slot sizes are whole multiples of this (MiB). */
const SLOT_ROUND_MIB = 64;

/**
 * The default slot size (MiB) of an OS 2 disk: its squashfs slot image (`imageBytes`) plus
 * SLOT_HEADROOM, rounded up to 64 MiB.
 */
export function slotMiBFor(imageBytes: number): number {
  return Math.max(SLOT_ROUND_MIB, Math.ceil((imageBytes * (1 + SLOT_HEADROOM)) / MiB / SLOT_ROUND_MIB) * SLOT_ROUND_MIB);
}

/** Refuses a squashfs slot image larger than the slot (`--slot-size`) with ImageTooLarge, naming the size it needs. */
export function assertFits(treeBytes: number, imageBytes: number, slotBytes: number): void {
  if (imageBytes > slotBytes)
    throw new ImageBuildError(
      'ImageTooLarge',
      `the root filesystem is ${mib(treeBytes)} MiB, ${mib(imageBytes)} MiB as a squashfs slot; the slot has ${mib(slotBytes)} MiB (raise --slot-size to at least ${mib(imageBytes)})`,
    );
}

export interface BuildImageOptions extends LayoutSizes {
  /**
   * What the root filesystem is made of: 'debian' (Edgeplane OS 2, the default: Debian packages with
   * mmdebstrap, systemd, containerd, cloud-init) or 'busybox' (the original small image: busybox init,
   * Node and the agent; seconds to build, no container runtime).
   */
  base?: 'debian' | 'busybox';
  /** OS 2: the Debian packages (default: files/packages.txt); `packagesFile` reads them from a file. */
  packages?: string[];
  packagesFile?: string;
  /** OS 2: Debian suite (default bookworm) and archive components (default main non-free-firmware). */
  suite?: string;
  components?: string[];
  /** OS 2: build the Debian base again even if the cache has one for these inputs. */
  refreshBase?: boolean;
  /** OS 2: Kubernetes distribution binaries placed into the image with their units (--kubernetes NAME=FILE). */
  kubernetes?: KubernetesBinary[];
  /** Lines of mmdebstrap's output while the Debian base is built. */
  onLog?: (line: string) => void;
  /** Image name and version (image.json, os-release, OCI labels). */
  name: string;
  version: string;
  /** Output directory: oci/ (OCI image layout), disk.img (with `disk`), build.json. */
  output: string;
  /** Reference recorded as slot A's image on the disk (e.g. where the image is pushed); default the OCI layout. */
  imageRef?: string;
  /** OCI tag in the layout; default the version. */
  tag?: string;
  /** Also write the installer disk image (GPT: esp, root-a with this image, root-b, data). */
  disk?: boolean;
  /**
   * Also write the installer ISO (installer.iso: a hybrid ISO for a CD or a USB stick, booting with
   * the same boot chain as the disk) that installs the image to a machine's disk. See docs/install.md.
   */
  installer?: boolean;
  /** With `installer`: a NoCloud seed directory (user-data, meta-data) the ISO carries for the devices it installs. */
  installerSeed?: string;
  /**
   * The disk's boot loader: 'shim' (default: Debian's signed shim and GRUB, boots with Secure Boot
   * enforced or off) or 'grub' (unsigned GRUB from grub-mkimage, firmware without Secure Boot only).
   */
  bootLoader?: BootLoader;
  /** Debian linux-image-*.deb; default: newest in cacheDir, else `apt-get download`. */
  kernelPackage?: string;
  /** Build cache (Debian bases, compressed layers, kernel packages); default EDGEPLANE_IMAGE_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/edgeplane/image. */
  cacheDir?: string;
  /** Kernel modules to load in the initramfs besides DEFAULT_MODULES. */
  modules?: string[];
  /** Kernel command line arguments; default a serial console plus the screen. */
  kernelArgs?: string;
  /** Checks the agent runs after a trial boot of this image (besides the profile's). */
  healthChecks?: HealthCheck[];
  /** Air-gap bundle directory with Kubernetes distribution binaries (bin/) and images. */
  airgapBundle?: string;
  /** Extra files in the root filesystem, path -> content. */
  files?: Record<string, string>;
  /**
   * busybox base only, for labs and tests on real machines: machines booting this image run their
   * Kubernetes layer SIMULATED (the agent's SimKubernetesGuestDevice; the image has no distribution)
   * while the OS, slots, reboots and network are real. Marked in the image and reported by the agent.
   */
  simulateKubernetes?: boolean;
  onStep?: (step: string, index: number, total: number) => void;
}

export interface BuiltImage {
  name: string;
  version: string;
  tag: string;
  /** Manifest digest of the OS image: what a profile pins. */
  digest: string;
  layoutDir: string;
  disk?: string;
  /** With `installer`: the installer ISO. */
  installerIso?: string;
  layout?: DiskLayout;
  /** With a disk: its boot loader. */
  bootLoader?: BootLoader;
  /** `signed`: the kernel carries an Authenticode signature (what Secure Boot needs; absent in results of older builders). */
  kernel: { release: string; package: string; signed?: boolean };
  /** Which base the image was built from (absent in results of builders before OS 2: busybox). */
  base?: 'debian' | 'busybox';
  /** OS 2: the Kubernetes distribution it carries (also the `io.edgeplane.kubernetes` annotation); absent: OS only. */
  kubernetes?: KubernetesRecord;
  /** OS 2: sizes in bytes: compressed layer, root filesystem, and with a disk the slot and how much of it the image uses. */
  sizes?: { layerBytes: number; uncompressedBytes: number; treeBytes: number; slotBytes?: number; slotUsedBytes?: number };
  /** OS 2: what came from the cache (`base`: the Debian tarball; `layer`: the compressed layer) and the base's input hash. */
  cache?: { dir: string; baseKey: string; base: boolean; layer: boolean };
}

/** The kernel command line and grub.cfg of a disk come with the agent's disk step (device/linux/os-disk.ts). */
export { DEFAULT_KERNEL_ARGS, grubConfig } from '@edgeplane/agent';

/**
 * `edgeplane image build`: an Edgeplane OS image (root filesystem with kernel, initramfs, busybox,
 * Node and the agent) as a single-layer OCI image, and optionally the installer disk that boots it.
 * Uses Debian packages and npm only: the kernel from a Debian package, tools from the build host.
 */
export async function buildImage(options: BuildImageOptions): Promise<BuiltImage> {
  if ((options.base ?? 'debian') === 'debian') return buildDebianImage(options);
  const withDisk = options.disk || options.installer;
  const steps = [
    'kernel',
    'initramfs',
    'root filesystem',
    'OCI image',
    ...(withDisk ? ['slots A and recovery', 'ESP', 'disk'] : []),
    ...(options.installer ? ['installer ISO'] : []),
  ];
  let step = 0;
  const next = (name: string) => options.onStep?.(name, step++, steps.length);
  const output = resolve(options.output);
  await mkdir(output, { recursive: true });
  const work = await mkdtemp(join(output, '.work-'));
  try {
    next('kernel');
    const deb = await findKernelPackage(options.kernelPackage, options.cacheDir ?? defaultCacheDir());
    const kernel = await unpackKernel(deb, join(work, 'kernel'));
    const modules = await resolveModules(kernel.modulesDir, [...DEFAULT_MODULES, ...(options.installer ? INSTALLER_MODULES : []), ...(options.modules ?? [])]);
    const signed = await kernelSigned(kernel.vmlinuz);

    next('initramfs');
    await assertStaticBusybox();
    const initramfs = join(work, 'initrd.img');
    await buildInitramfs(work, modules, initramfs);

    next('root filesystem');
    const tree = join(work, 'rootfs');
    await buildRootfs(tree, {
      name: options.name,
      version: options.version,
      agentVersion: AGENT_VERSION,
      vmlinuz: kernel.vmlinuz,
      initramfs,
      healthChecks: options.healthChecks,
      airgapBundle: options.airgapBundle,
      files: { ...options.files, ...(options.simulateKubernetes ? { [SIMULATED_KUBERNETES_MARKER]: SIMULATED_KUBERNETES_TEXT } : {}) },
    });
    // The installer's live system writes the GPT with the agent's disk code (sfdisk).
    if (options.installer) await new HostBinaries(tree).add(await which('sfdisk'), 'bin/sfdisk');
    await rm(join(work, 'kernel'), { recursive: true, force: true });

    next('OCI image');
    const tag = options.tag ?? options.version;
    const layoutDir = join(output, 'oci');
    const written = await oci.writeOciImage({
      rootfs: tree,
      layoutDir,
      tag,
      labels: { 'org.opencontainers.image.title': options.name, 'org.opencontainers.image.version': options.version },
    });
    const built: BuiltImage = {
      name: options.name,
      version: options.version,
      tag,
      digest: written.digest,
      layoutDir,
      kernel: { release: kernel.release, package: kernel.package, signed },
      base: 'busybox',
    };

    if (withDisk) await diskStep(options, built, { tree, work, output, next, layout: diskLayout(options) });
    await writeFile(join(output, 'build.json'), `${JSON.stringify(built, null, 2)}\n`);
    return built;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const SIMULATED_KUBERNETES_TEXT =
  'This image was built with simulateKubernetes: the Edgeplane agent on a machine booting it simulates the Kubernetes layer\n' +
  '(no distribution, container runtime or API server in this image); the OS, A/B slots, reboots and network are real.\n';

/** The initramfs runs busybox before any library is mounted: it must be the static build. */
async function assertStaticBusybox(): Promise<void> {
  const busybox = await which('busybox');
  const { stdout, stderr } = await runTool('ldd', [busybox]).catch((err: Error) => ({ stdout: '', stderr: err.message }));
  if (!/not a dynamic executable|statically linked/.test(`${stdout}${stderr}`)) {
    throw new ImageBuildError(
      'ImageToolMissing',
      `${busybox} is dynamically linked; the initramfs needs busybox-static (Debian: apt-get install busybox-static)`,
    );
  }
}

/**
 * Edgeplane OS 2: the Debian base from mmdebstrap (cached by its inputs), Edgeplane's part on top
 * (agent unit, persistence, cloud-init, watchdog, optional Kubernetes binaries), the builder's own
 * initramfs, one reproducible OCI layer, and with `disk` the installer disk.
 */
async function buildDebianImage(options: BuildImageOptions): Promise<BuiltImage> {
  const withDisk = options.disk || options.installer;
  const steps = [
    'Debian base',
    'root filesystem',
    'initramfs',
    'OCI image',
    ...(withDisk ? ['slots A and recovery', 'ESP', 'disk'] : []),
    ...(options.installer ? ['installer ISO'] : []),
  ];
  let step = 0;
  const next = (name: string) => options.onStep?.(name, step++, steps.length);
  if (options.kernelPackage)
    throw new ImageBuildError('ImageBuildFailed', 'the Debian base installs its kernel from the package list; --kernel-package is for --base busybox');
  if (options.simulateKubernetes)
    throw new ImageBuildError('ImageBuildFailed', 'simulateKubernetes is for --base busybox; the Debian base carries a real distribution (--kubernetes)');
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const epoch = sourceDateEpoch();
  const packages = options.packages ?? (await readPackageList(options.packagesFile));
  const output = resolve(options.output);
  await mkdir(output, { recursive: true });
  const work = await mkdtemp(join(output, '.work-'));
  try {
    next('Debian base');
    await which('mmdebstrap');
    const base = await debianBase({
      packages,
      suite: options.suite,
      components: options.components,
      cacheDir,
      refresh: options.refreshBase,
      onLog: options.onLog,
    });

    next('root filesystem');
    const tree = join(work, 'rootfs');
    await unpackBase(base.tar, tree);
    const kernel = await treeKernel(tree);
    const kubernetes = await installKubernetes(tree, options.kubernetes ?? []);
    await customizeTree(tree, {
      name: options.name,
      version: options.version,
      agentVersion: AGENT_VERSION,
      healthChecks: options.healthChecks,
      airgapBundle: options.airgapBundle,
      files: options.files,
      kubernetes,
    });

    next('initramfs');
    await rm(join(tree, 'boot/vmlinuz'), { force: true });
    await symlink(`vmlinuz-${kernel.release}`, join(tree, 'boot/vmlinuz'));
    const modules = [...(options.installer ? INSTALLER_MODULES : []), ...(options.modules ?? [])];
    await buildOs2Initramfs(work, kernel.modulesDir, modules, join(tree, 'boot/initrd.img'), epoch);

    next('OCI image');
    const tag = options.tag ?? options.version;
    const layoutDir = join(output, 'oci');
    const labels: Record<string, string> = {
      'org.opencontainers.image.title': options.name,
      'org.opencontainers.image.version': options.version,
      ...(kubernetes ? { [KUBERNETES_ANNOTATION]: kubernetesAnnotation(kubernetes) } : {}),
    };
    const written = await writeTreeImage({ tree, layoutDir, tag, work, cacheDir, epoch, labels });
    const bytes = await treeBytes(tree);
    const built: BuiltImage = {
      name: options.name,
      version: options.version,
      tag,
      digest: written.digest,
      layoutDir,
      kernel: {
        release: kernel.release,
        package: `linux-image-${kernel.release}`,
        signed: await kernelSigned(join(tree, 'boot', `vmlinuz-${kernel.release}`)),
      },
      base: 'debian',
      ...(kubernetes ? { kubernetes } : {}),
      sizes: { layerBytes: written.layer.size, uncompressedBytes: written.uncompressedSize, treeBytes: bytes },
      cache: { dir: cacheDir, baseKey: base.key, base: base.cached, layer: written.cached },
    };

    if (withDisk) {
      // The slots are squashfs (the image's image.json says so): sized from slot A's image once written.
      const layoutFor = (imageBytes: number): DiskLayout => {
        const slotMiB = options.slotMiB ?? slotMiBFor(imageBytes);
        assertFits(bytes, imageBytes, slotMiB * MiB);
        return diskLayout({ ...options, slotMiB });
      };
      const disk = await diskStep(options, built, { tree, work, output, next, layout: layoutFor, seedPaths: OS2_SEED_PATHS });
      built.sizes = { ...built.sizes!, slotBytes: partitionMiB(disk.layout, 'root-a') * MiB, slotUsedBytes: disk.slotUsedBytes };
    }
    await writeFile(join(output, 'build.json'), `${JSON.stringify(built, null, 2)}\n`);
    return built;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const mib = (bytes: number) => Math.ceil(bytes / MiB);

/**
 * The disk step of both bases: slots A and recovery, data, ESP and disk (the agent's writeOsDisk),
 * and with `installer` the ISO from the same partition images; recorded in `built`.
 */
async function diskStep(
  options: BuildImageOptions,
  built: BuiltImage,
  o: { tree: string; work: string; output: string; next: (step: string) => void; layout: OsDiskOptions['layout']; seedPaths?: string[] },
): Promise<{ layout: DiskLayout; slotUsedBytes: number }> {
  const meta = slotMeta(options, built.digest, `oci:${built.layoutDir}:${built.tag}`);
  const live = options.installer ? await keepBootFiles(o.tree, o.work) : undefined;
  const disk = join(o.output, 'disk.img');
  let slotUsedBytes = 0;
  const layout = await writeOsDisk({
    tree: o.tree,
    layout: o.layout,
    output: disk,
    workDir: o.work,
    kernelArgs: options.kernelArgs,
    bootLoader: options.bootLoader,
    onStep: o.next,
    meta,
    onSlotWritten: async (rootA) => {
      slotUsedBytes = (await stat(rootA)).size;
    },
    onPartitionImages: live
      ? async (images, layout) => {
          o.next('installer ISO');
          built.installerIso = await installerIso(options, o.output, o.work, images, live, layout, meta, o.seedPaths);
        }
      : undefined,
  });
  built.disk = disk;
  built.layout = layout;
  built.bootLoader = options.bootLoader ?? 'shim';
  return { layout, slotUsedBytes };
}

/** The image's kernel and initramfs, copied out of the tree before the disk step consumes it: the installer ISO boots them. */
async function keepBootFiles(tree: string, work: string): Promise<{ vmlinuz: string; initrd: string }> {
  const dir = join(work, 'live');
  await mkdir(dir, { recursive: true });
  const live = { vmlinuz: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img') };
  // realpath: the Debian base's /boot/vmlinuz is a relative link to vmlinuz-<release>.
  await copyFile(await realpath(join(tree, 'boot/vmlinuz')), live.vmlinuz);
  await copyFile(await realpath(join(tree, 'boot/initrd.img')), live.initrd);
  return live;
}

/** The installer ISO (OUTPUT/installer.iso) from the disk step's partition images. */
async function installerIso(
  options: BuildImageOptions,
  output: string,
  work: string,
  images: { esp: string; 'root-a': string },
  live: { vmlinuz: string; initrd: string },
  layout: DiskLayout,
  meta: ReturnType<typeof slotMeta>,
  seedPaths?: string[],
): Promise<string> {
  const sizeOf = (name: string) => layout.partitions.find((p) => p.name === name)!.sizeMiB;
  const iso = join(output, 'installer.iso');
  await writeInstallerIso({
    output: iso,
    workDir: join(work, 'installer'),
    rootImage: images['root-a'],
    espImage: images.esp,
    ...live,
    sizes: { espMiB: sizeOf('esp'), slotMiB: sizeOf('root-a') },
    meta,
    bootLoader: options.bootLoader ?? 'shim',
    kernelArgs: options.kernelArgs,
    seedDir: options.installerSeed,
    ...(seedPaths ? { seedPaths } : {}),
  });
  return iso;
}

/** What root-a and recovery record about the image written into them (both bases' disks). */
function slotMeta(options: BuildImageOptions, digest: string, layoutRef: string) {
  return { digest, image: options.imageRef ?? layoutRef, name: options.name, version: options.version, writtenAt: new Date().toISOString() };
}
