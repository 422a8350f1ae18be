import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODULES, findKernelPackage, resolveModules } from './kernel.js';
import { ImageBuildError } from './tools.js';

/**
 * A fake lib/modules/<release> tree: each .ko carries only the `.modinfo`-style strings the
 * resolver reads (`\0depends=a,b\0`), between some bytes like a real ELF would have around them.
 */
async function fakeModules(dir: string, modules: Record<string, string[] | undefined>, builtin: string[] = []): Promise<void> {
  for (const [path, depends] of Object.entries(modules)) {
    const file = join(dir, 'kernel', `${path}.ko`);
    await mkdir(join(file, '..'), { recursive: true });
    const info = depends === undefined ? '' : `\0depends=${depends.join(',')}\0`;
    await writeFile(file, Buffer.concat([Buffer.from('\x7fELF\0\0\0license=GPL'), Buffer.from(info), Buffer.from('\0vermagic=6.1.0 SMP\0')]));
  }
  await writeFile(join(dir, 'modules.builtin'), builtin.map((m) => `kernel/${m}.ko`).join('\n'));
}

describe('resolveModules', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-modules-'));
    await fakeModules(
      dir,
      {
        'drivers/virtio/virtio_pci': ['virtio_pci_modern_dev', 'virtio', 'virtio_ring'],
        'drivers/virtio/virtio_pci_modern_dev': [],
        'drivers/virtio/virtio': [],
        'drivers/virtio/virtio_ring': ['virtio'],
        'drivers/block/virtio_blk': ['virtio', 'virtio_ring'],
        'fs/ext4/ext4': ['mbcache', 'jbd2', 'crc16'],
        'fs/mbcache': undefined, // no depends= entry at all
        'fs/jbd2/jbd2': [],
        'lib/crc16': [],
        'fs/nls/nls-ascii': [], // file names may use '-' where module names use '_'
      },
      ['fs/vfat', 'lib/crc32c_generic'],
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const names = (paths: string[]) => paths.map((p) => basename(p, '.ko'));

  it('orders every module after its dependencies, each once', async () => {
    const order = names(await resolveModules(dir, ['virtio_blk', 'virtio_pci', 'ext4']));
    expect(order).toEqual(['virtio', 'virtio_ring', 'virtio_blk', 'virtio_pci_modern_dev', 'virtio_pci', 'mbcache', 'jbd2', 'crc16', 'ext4']);
  });

  it('returns absolute paths of the .ko files and treats - and _ alike', async () => {
    const [ascii] = await resolveModules(dir, ['nls_ascii']);
    expect(ascii).toBe(join(dir, 'kernel/fs/nls/nls-ascii.ko'));
  });

  it('skips modules built into the kernel (modules.builtin)', async () => {
    expect(names(await resolveModules(dir, ['vfat', 'crc32c_generic', 'jbd2']))).toEqual(['jbd2']);
  });

  it('the TPM 2.0 drivers are default modules: skipped where built in (Debian), loaded after their dependency where modules', async () => {
    expect(DEFAULT_MODULES).toEqual(expect.arrayContaining(['tpm_crb', 'tpm_tis']));
    const other = await mkdtemp(join(tmpdir(), 'ep-modules-tpm-'));
    try {
      await fakeModules(other, {
        'drivers/char/tpm/tpm_crb': ['tpm'],
        'drivers/char/tpm/tpm_tis': ['tpm_tis_core', 'tpm'],
        'drivers/char/tpm/tpm_tis_core': ['tpm'],
        'drivers/char/tpm/tpm': [],
      });
      expect(names(await resolveModules(other, ['tpm_crb', 'tpm_tis']))).toEqual(['tpm', 'tpm_crb', 'tpm_tis_core', 'tpm_tis']);
      await fakeModules(other, {}, ['drivers/char/tpm/tpm', 'drivers/char/tpm/tpm_crb', 'drivers/char/tpm/tpm_tis']);
      await rm(join(other, 'kernel'), { recursive: true, force: true });
      await mkdir(join(other, 'kernel'));
      expect(await resolveModules(other, ['tpm_crb', 'tpm_tis'])).toEqual([]);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('rejects a requested module that is neither a module nor built in', async () => {
    const err = await resolveModules(dir, ['ext4', 'no_such_driver']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageBuildError);
    expect((err as ImageBuildError).code).toBe('ImageBuildFailed');
    expect((err as Error).message).toBe('kernel module no_such_driver is neither a module nor built into the kernel');
  });
});

describe('findKernelPackage', () => {
  it('names a missing --kernel-package file (KernelPackageMissing)', async () => {
    const err = await findKernelPackage('/nonexistent/linux-image.deb', tmpdir()).catch((e: unknown) => e);
    expect((err as ImageBuildError).code).toBe('KernelPackageMissing');
    expect((err as Error).message).toBe('kernel package /nonexistent/linux-image.deb does not exist');
  });

  it('takes the newest real linux-image .deb from the cache, not the small meta-package', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'ep-kcache-'));
    try {
      await writeFile(join(cache, 'linux-image-6.1.0-10-amd64_6.1.1_amd64.deb'), Buffer.alloc(2 * 1024 * 1024));
      await writeFile(join(cache, 'linux-image-6.1.0-12-amd64_6.1.3_amd64.deb'), Buffer.alloc(2 * 1024 * 1024));
      await writeFile(join(cache, 'linux-image-6.1.0-13-amd64_6.1.4_amd64.deb'), Buffer.alloc(1024)); // meta-package size
      await writeFile(join(cache, 'linux-image-amd64_6.1.4_amd64.deb'), Buffer.alloc(2 * 1024 * 1024)); // not versioned
      expect(basename(await findKernelPackage(undefined, cache))).toBe('linux-image-6.1.0-12-amd64_6.1.3_amd64.deb');
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });
});
