import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { runTool } from '@edgeplane/agent';

export { runTool };

/** A host tool the builder needs is missing: says which Debian package has it. */
export class ImageBuildError extends Error {
  constructor(
    readonly code: 'ImageToolMissing' | 'KernelPackageMissing' | 'ImageTooLarge' | 'ImageBuildFailed',
    message: string,
  ) {
    super(message);
    this.name = 'ImageBuildError';
  }
}

/** Debian package of each host tool `edgeplane image build` runs. */
export const TOOL_PACKAGES: Record<string, string> = {
  busybox: 'busybox-static',
  'mkfs.ext4': 'e2fsprogs',
  mke2fs: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  mmd: 'mtools',
  mcopy: 'mtools',
  sfdisk: 'fdisk',
  'grub-mkimage': 'grub-common',
  'grub-editenv': 'grub-common',
  'dpkg-deb': 'dpkg',
  ldd: 'libc-bin',
  cpio: 'cpio',
  skopeo: 'skopeo',
  mmdebstrap: 'mmdebstrap',
  tar: 'tar',
  gzip: 'gzip',
  dumpe2fs: 'e2fsprogs',
};

/** Absolute path of a host tool, or a clear error naming its Debian package. */
export async function which(tool: string): Promise<string> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const path = `${dir}/${tool}`;
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  const pkg = TOOL_PACKAGES[tool];
  throw new ImageBuildError('ImageToolMissing', `image build needs ${tool}${pkg ? ` (Debian: apt-get install ${pkg})` : ''}`);
}

/**
 * Runs a shell pipeline in `cwd` (used only where a pipe between tools is the point, e.g.
 * `find | cpio | gzip` for the initramfs); every argument is the builder's own, never user input.
 */
export function runPipeline(script: string, cwd: string, timeoutMs = 10 * 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-ec', script], { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new ImageBuildError('ImageBuildFailed', `${script} failed (${code}): ${stderr.trim()}`))));
  });
}
