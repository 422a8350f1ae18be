import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { ImageBuildError, runTool, which } from './tools.js';

/**
 * Drivers the initramfs loads so the root filesystem, the ESP, the seed ISO and the network come up:
 * virtio (QEMU/KVM guests and most clouds), AHCI/NVMe disks and Intel NICs (typical edge boxes), and
 * the TPM 2.0 drivers.
 * Their dependencies are added automatically. More with `--module`.
 */
export const DEFAULT_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'virtio_net',
  'ahci',
  'sd_mod',
  'nvme',
  'e1000e',
  'crc32c_generic',
  'ext4',
  'vfat',
  'nls_cp437',
  'nls_ascii',
  'isofs',
  // TPM 2.0 (the agent's identity key, /dev/tpmrm0): the CRB and TIS interfaces firmware TPMs, discrete
  // TPMs and QEMU's tpm-crb/tpm-tis use. Debian's kernel builds them in (config-6.1.0-*-amd64:
  // CONFIG_TCG_TPM=y, CONFIG_TCG_TIS=y, CONFIG_TCG_CRB=y), so this loads nothing there; a kernel with
  // them as modules gets them loaded.
  'tpm_crb',
  'tpm_tis',
  // efivarfs (config-6.1.0-*-amd64: CONFIG_EFIVAR_FS=m): the system start mounts it so the agent can
  // read the firmware's SecureBoot variable (why a trial boot did not start).
  'efivarfs',
];

export interface Kernel {
  /** Kernel release, e.g. 6.1.0-56-amd64. */
  release: string;
  vmlinuz: string;
  /** Directory with the release's modules (lib/modules/<release>). */
  modulesDir: string;
  /** The Debian package it came from. */
  package: string;
}

/**
 * A Debian kernel package: `packagePath` when given, else the newest linux-image-*.deb in
 * `cacheDir`, else one fetched with `apt-get download` (the package linux-image-amd64 depends on).
 */
export async function findKernelPackage(packagePath: string | undefined, cacheDir: string): Promise<string> {
  if (packagePath) {
    if (!(await stat(packagePath).catch(() => undefined))) throw new ImageBuildError('KernelPackageMissing', `kernel package ${packagePath} does not exist`);
    return packagePath;
  }
  const cached = await cachedKernel(cacheDir);
  if (cached) return cached;
  await mkdir(cacheDir, { recursive: true });
  try {
    const { stdout } = await runTool('apt-cache', ['depends', 'linux-image-amd64']);
    const name = /Depends:\s*(linux-image-\S+)/.exec(stdout)?.[1];
    if (!name) throw new Error('apt-cache names no kernel package behind linux-image-amd64');
    // Download into a private directory and rename: a concurrent build never sees half a package.
    const tmp = await mkdtemp(join(cacheDir, '.download-'));
    try {
      await runDownload(name, tmp);
      for (const file of await readdir(tmp)) await rename(join(tmp, file), join(cacheDir, file));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    throw new ImageBuildError(
      'KernelPackageMissing',
      `no kernel package: pass --kernel-package FILE.deb (a Debian linux-image-*.deb) or let apt-get download one (${(err as Error).message})`,
    );
  }
  const fetched = await cachedKernel(cacheDir);
  if (!fetched) throw new ImageBuildError('KernelPackageMissing', `apt-get download left no linux-image-*.deb in ${cacheDir}`);
  return fetched;
}

async function runDownload(name: string, dir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('apt-get', ['download', '-q', name], { cwd: dir, timeout: 10 * 60_000 }, (err, _o, stderr) =>
      err ? reject(new Error(`apt-get download ${name}: ${String(stderr).trim() || err.message}`)) : resolve(),
    );
  });
}

async function cachedKernel(dir: string): Promise<string | undefined> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const debs = [];
  for (const n of names.filter((n) => /^linux-image-\d.*\.deb$/.test(n)).sort()) {
    const st = await stat(join(dir, n));
    if (st.size > 1024 * 1024) debs.push(join(dir, n)); // not the 1 KiB meta-package
  }
  return debs.at(-1);
}

/** Unpacks the kernel package into `dir` (dpkg-deb -x: no maintainer scripts, no root needed). */
export async function unpackKernel(deb: string, dir: string): Promise<Kernel> {
  await which('dpkg-deb');
  await mkdir(dir, { recursive: true });
  await runTool('dpkg-deb', ['-x', deb, dir], { timeoutMs: 10 * 60_000 });
  const boot = await readdir(join(dir, 'boot'));
  const vmlinuz = boot.find((n) => n.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new ImageBuildError('KernelPackageMissing', `${basename(deb)} has no /boot/vmlinuz-*: not a kernel package`);
  const release = vmlinuz.slice('vmlinuz-'.length);
  return { release, vmlinuz: join(dir, 'boot', vmlinuz), modulesDir: join(dir, 'lib/modules', release), package: basename(deb) };
}

/**
 * The module files to load for `wanted`, dependencies first. Dependencies come from each module's
 * own `.modinfo` section (`depends=`), because a kernel package carries no modules.dep (depmod runs
 * at install time, which an image build does not do).
 */
export async function resolveModules(modulesDir: string, wanted: string[]): Promise<string[]> {
  const index = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.ko')) index.set(normalize(entry.name.slice(0, -3)), path);
    }
  };
  await walk(join(modulesDir, 'kernel'));
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, from?: string): Promise<void> => {
    const key = normalize(name);
    if (seen.has(key)) return;
    seen.add(key);
    const path = index.get(key);
    if (!path) {
      // Built into this kernel (=y) or absent: only an explicit request without a module is an error.
      if (!from && !(await builtIn(modulesDir, key)))
        throw new ImageBuildError('ImageBuildFailed', `kernel module ${name} is neither a module nor built into the kernel`);
      return;
    }
    for (const dep of await moduleDepends(path)) await visit(dep, key);
    order.push(path);
  };
  for (const name of wanted) await visit(name);
  return order;
}

function normalize(name: string): string {
  return name.replace(/-/g, '_');
}

async function builtIn(modulesDir: string, name: string): Promise<boolean> {
  const text = await readFile(join(modulesDir, 'modules.builtin'), 'utf8').catch(() => '');
  return text.split('\n').some((line) => normalize(basename(line, '.ko')) === name);
}

/** The `depends=` entry of a module's .modinfo strings (NUL-separated key=value pairs). */
async function moduleDepends(path: string): Promise<string[]> {
  const bytes = await readFile(path);
  const marker = Buffer.from('\0depends=');
  const at = bytes.indexOf(marker);
  if (at < 0) return [];
  const start = at + marker.length;
  const end = bytes.indexOf(0, start);
  const value = bytes.subarray(start, end).toString('utf8');
  return value ? value.split(',').filter(Boolean) : [];
}

/** Whether a kernel (an EFI PE/COFF image) carries an Authenticode signature (see oci.peHasSignature). */
export async function kernelSigned(vmlinuz: string): Promise<boolean> {
  return oci.peHasSignature((await readFile(vmlinuz)).subarray(0, 4096));
}
