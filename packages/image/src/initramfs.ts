import { chmod, copyFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { runPipeline, runTool, which } from './tools.js';

/** Where the builder's own boot files (init scripts, inittab) live. */
export const FILES_DIR = new URL('../files/', import.meta.url).pathname;

/**
 * Builds the initramfs: busybox, the driver modules in load order, and the `init` script
 * (files/initramfs-init) that mounts the slot named by root=PARTLABEL=... and switches to it.
 * A gzip-compressed newc cpio, as the kernel expects.
 */
export async function buildInitramfs(workDir: string, modules: string[], output: string): Promise<void> {
  const tree = join(workDir, 'initramfs');
  await rm(tree, { recursive: true, force: true });
  for (const dir of ['bin', 'dev', 'proc', 'sys', 'newroot', 'lib/modules']) await mkdir(join(tree, dir), { recursive: true });
  await installBusybox(tree);
  const names: string[] = [];
  for (const path of modules) {
    const name = basename(path);
    await copyFile(path, join(tree, 'lib/modules', name));
    names.push(name);
  }
  await writeFile(join(tree, 'lib/modules/load-order'), `${names.join('\n')}\n`);
  await copyFile(join(FILES_DIR, 'initramfs-init'), join(tree, 'init'));
  await chmod(join(tree, 'init'), 0o755);
  await which('cpio');
  await runPipeline(`find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner=0:0 | gzip -6 > '${output}'`, tree);
  await rm(tree, { recursive: true, force: true });
}

/** busybox (static) at /bin/busybox and a symlink per applet it provides, unless a file is already there. */
export async function installBusybox(tree: string): Promise<void> {
  const busybox = await which('busybox');
  await mkdir(join(tree, 'bin'), { recursive: true });
  await copyFile(busybox, join(tree, 'bin/busybox'));
  await chmod(join(tree, 'bin/busybox'), 0o755);
  const { stdout } = await runTool(busybox, ['--list']);
  for (const applet of stdout.split('\n').map((s) => s.trim())) {
    if (!applet || applet === 'busybox' || applet.includes('/')) continue;
    await symlink('busybox', join(tree, 'bin', applet)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}
