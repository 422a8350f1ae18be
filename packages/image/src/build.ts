import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { AGENT_VERSION, GrubEnv, LinuxSlots, oci } from '@edgeplane/agent';
import type { HealthCheck } from '@edgeplane/protocol';
import { writeDisk, writeEsp } from './disk.js';
import { type DiskLayout, diskLayout, type LayoutSizes, MiB } from './disk-layout.js';
import { buildInitramfs } from './initramfs.js';
import { DEFAULT_MODULES, findKernelPackage, resolveModules, unpackKernel } from './kernel.js';
import { buildRootfs } from './rootfs.js';
import { ImageBuildError, runTool, which } from './tools.js';

export interface BuildImageOptions extends LayoutSizes {
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
  /** Debian linux-image-*.deb; default: newest in cacheDir, else `apt-get download`. */
  kernelPackage?: string;
  /** Where downloaded kernel packages are kept; default ~/.cache/edgeplane/image. */
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
  layout?: DiskLayout;
  kernel: { release: string; package: string };
}

export const DEFAULT_KERNEL_ARGS = 'console=tty0 console=ttyS0,115200';

const GRUB_TEMPLATE = new URL('../../agent/boot/grub.cfg.template', import.meta.url);

/**
 * `edgeplane image build`: an Edgeplane OS image (root filesystem with kernel, initramfs, busybox,
 * Node and the agent) as a single-layer OCI image, and optionally the installer disk that boots it.
 * Uses Debian packages and npm only: the kernel from a Debian package, tools from the build host.
 */
export async function buildImage(options: BuildImageOptions): Promise<BuiltImage> {
  const steps = ['kernel', 'initramfs', 'root filesystem', 'OCI image', ...(options.disk ? ['slots A and recovery', 'ESP', 'disk'] : [])];
  let step = 0;
  const next = (name: string) => options.onStep?.(name, step++, steps.length);
  const output = resolve(options.output);
  await mkdir(output, { recursive: true });
  const work = await mkdtemp(join(output, '.work-'));
  try {
    next('kernel');
    const deb = await findKernelPackage(options.kernelPackage, options.cacheDir ?? join(homedir(), '.cache/edgeplane/image'));
    const kernel = await unpackKernel(deb, join(work, 'kernel'));
    const modules = await resolveModules(kernel.modulesDir, [...DEFAULT_MODULES, ...(options.modules ?? [])]);

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
      files: options.files,
    });
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
      kernel: { release: kernel.release, package: kernel.package },
    };

    if (options.disk) {
      const layout = diskLayout(options);
      const sizeOf = (name: string) => layout.partitions.find((p) => p.name === name)?.sizeMiB ?? 0;
      next('slots A and recovery');
      // The agent's own slot writer fills recovery and root-a, so the installed slots are exactly what an update writes.
      const rootA = join(work, 'root-a.img');
      const recovery = join(work, 'recovery.img');
      const slots = new LinuxSlots({ root: work, targets: { A: rootA, recovery }, imageSizeBytes: sizeOf('root-a') * MiB });
      const meta = {
        digest: written.digest,
        image: options.imageRef ?? `oci:${layoutDir}:${tag}`,
        name: options.name,
        version: options.version,
        writtenAt: new Date().toISOString(),
      };
      await slots.writeRecovery(tree, meta);
      await slots.writeSlot('A', tree, meta);
      const data = join(work, 'data.img');
      await which('mkfs.ext4');
      await runTool('mkfs.ext4', ['-F', '-q', '-L', 'edgeplane-data', data, `${sizeOf('data') * 1024}k`]);

      next('ESP');
      const grubenv = new GrubEnv(join(work, 'grubenv'));
      await grubenv.set({ active_slot: 'A' });
      const esp = join(work, 'esp.img');
      await writeEsp(esp, sizeOf('esp'), work, await grubConfig(options.kernelArgs ?? DEFAULT_KERNEL_ARGS), grubenv.file);

      next('disk');
      const disk = join(output, 'disk.img');
      await writeDisk(disk, layout, { esp, 'root-a': rootA, data, recovery });
      built.disk = disk;
      built.layout = layout;
    }
    await writeFile(join(output, 'build.json'), `${JSON.stringify(built, null, 2)}\n`);
    return built;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** boot/grub.cfg.template with this image's values: grubenv beside grub.cfg on the ESP, no menu delay. */
export async function grubConfig(kernelArgs: string): Promise<string> {
  const template = await readFile(GRUB_TEMPLATE, 'utf8');
  return template.replaceAll('@GRUBENV@', '${prefix}/grubenv').replaceAll('@TIMEOUT@', '0').replaceAll('@KERNEL_ARGS@', kernelArgs);
}

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
