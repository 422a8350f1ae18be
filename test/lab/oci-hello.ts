import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A tiny OCI image for containerd in the lab: the static busybox (Debian busybox-static) and a file
 * with `line`, whose default command prints that file. Built with umoci's unpack + repack (a real
 * rootfs diff); `umoci insert` writes layers GNU tar refuses. Returns the OCI layout directory; the
 * image is tagged `tag`.
 */
export function buildHelloImage(dir: string, tag: string, line: string): string {
  const layout = join(dir, 'oci');
  const bundle = join(dir, 'bundle');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const umoci = (...args: string[]) => execFileSync('umoci', args, { stdio: 'pipe' });
  umoci('init', '--layout', layout);
  umoci('new', '--image', `${layout}:${tag}`);
  umoci('unpack', '--image', `${layout}:${tag}`, bundle);
  const rootfs = join(bundle, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  symlinkSync('busybox', join(rootfs, 'bin', 'sh'));
  symlinkSync('busybox', join(rootfs, 'bin', 'cat'));
  writeFileSync(join(rootfs, 'etc', 'lab-line'), `${line}\n`);
  umoci('repack', '--image', `${layout}:${tag}`, bundle);
  umoci('config', '--image', `${layout}:${tag}`, '--config.cmd', '/bin/cat', '--config.cmd', '/etc/lab-line');
  umoci('gc', '--layout', layout);
  return layout;
}
