import { chmod, copyFile, cp, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IMAGE_HEALTH_CHECKS_PATH } from '@edgeplane/agent';
import type { HealthCheck } from '@edgeplane/protocol';
import { installAgent, nodeRuntime } from './agent-bundle.js';
import { HostBinaries } from './host-binaries.js';
import { FILES_DIR, installBusybox } from './initramfs.js';
import { which } from './tools.js';

/** Where an image's own post-boot health checks live (read by the agent's os manager after a trial boot). */

export interface RootfsOptions {
  name: string;
  version: string;
  /** Agent version written to /opt/edgeplane/package.json. */
  agentVersion: string;
  vmlinuz: string;
  initramfs: string;
  hostname?: string;
  healthChecks?: HealthCheck[];
  /** Air-gap bundle: its bin/* go to /bin, the whole directory to /opt/edgeplane/airgap. */
  airgapBundle?: string;
  /** Extra files, path inside the image -> content. */
  files?: Record<string, string>;
}

/** Host programs the agent runs on the device: slot writes, verification and the grubenv. */
const HOST_TOOLS: [tool: string, dest: string][] = [
  ['mke2fs', 'bin/mke2fs'],
  ['e2fsck', 'bin/e2fsck'],
  ['debugfs', 'bin/debugfs'],
  ['grub-editenv', 'bin/grub-editenv'],
];

/**
 * Assembles an Edgeplane OS root filesystem in `tree`: busybox (init, shell, DHCP client), the
 * e2fsprogs and grub-editenv programs the os manager uses, a Node runtime with the agent, the
 * kernel and initramfs under /boot, and the init scripts from files/. The root is mounted
 * read-only; /var/lib/edgeplane is the data partition, /boot/efi the ESP, /run and /tmp are tmpfs.
 */
export async function buildRootfs(tree: string, options: RootfsOptions): Promise<void> {
  const dirs = ['boot/efi', 'dev', 'etc/init.d', 'mnt', 'opt', 'proc', 'root', 'run', 'sys', 'tmp', 'usr/lib/edgeplane', 'var/lib/edgeplane', 'var/log'];
  // Mount points for the writable state rcS bind-mounts from the data partition.
  dirs.push('etc/edgeplane', 'etc/rancher', 'etc/kubernetes', 'var/lib/rancher', 'var/lib/kubelet', 'var/lib/etcd');
  for (const dir of dirs) await mkdir(join(tree, dir), { recursive: true });
  await chmod(join(tree, 'tmp'), 0o1777);
  const bins = new HostBinaries(tree);
  for (const [tool, dest] of HOST_TOOLS) await bins.add(await which(tool), dest);
  await bins.addTpm2Tools(); // the agent's identity key lives in the TPM when the device has one
  await symlink('mke2fs', join(tree, 'bin/mkfs.ext4'));
  await symlink('e2fsck', join(tree, 'bin/fsck.ext4'));
  await copyFile('/etc/mke2fs.conf', join(tree, 'etc/mke2fs.conf')).catch(() => undefined);
  await bins.add(nodeRuntime(), 'bin/node');
  await installBusybox(tree); // after the real tools, so e2fsprogs' mke2fs wins over busybox's applet
  // Merged /usr: one bin directory.
  await symlink('bin', join(tree, 'sbin'));
  await symlink('../bin', join(tree, 'usr/bin'));
  await symlink('../bin', join(tree, 'usr/sbin'));
  await installAgent(tree, options.agentVersion);

  await copyFile(options.vmlinuz, join(tree, 'boot/vmlinuz'));
  await copyFile(options.initramfs, join(tree, 'boot/initrd.img'));
  const scripts: [string, string][] = [
    ['inittab', 'etc/inittab'],
    ['rcS', 'etc/init.d/rcS'],
    ['agent-service', 'usr/lib/edgeplane/agent-service'],
    ['shutdown', 'usr/lib/edgeplane/shutdown'],
    ['udhcpc-script', 'usr/lib/edgeplane/udhcpc-script'],
  ];
  for (const [from, to] of scripts) {
    await copyFile(join(FILES_DIR, from), join(tree, to));
    await chmod(join(tree, to), from === 'inittab' ? 0o644 : 0o755);
  }
  const files: Record<string, string> = {
    'etc/os-release': `NAME="${options.name}"\nID=edgeplane\nVERSION_ID=${options.version}\nPRETTY_NAME="${options.name} ${options.version}"\n`,
    'usr/lib/edgeplane/image.json': `${JSON.stringify({ name: options.name, version: options.version })}\n`,
    'etc/hostname': `${options.hostname ?? 'edgeplane'}\n`,
    'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
    'etc/group': 'root:x:0:\n',
    'etc/hosts': '127.0.0.1 localhost\n::1 localhost\n',
    'etc/nsswitch.conf': 'hosts: files dns\n',
    ...(options.healthChecks?.length ? { [IMAGE_HEALTH_CHECKS_PATH]: `${JSON.stringify(options.healthChecks, null, 2)}\n` } : {}),
    ...options.files,
  };
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(tree, path, '..'), { recursive: true });
    await writeFile(join(tree, path), content);
  }
  // Device-specific files live on the data partition.
  await symlink('/var/lib/edgeplane/machine-id', join(tree, 'etc/machine-id'));
  await symlink('/run/resolv.conf', join(tree, 'etc/resolv.conf'));
  if (options.airgapBundle) await installAirgapBundle(tree, options.airgapBundle);
}

async function installAirgapBundle(tree: string, bundle: string): Promise<void> {
  await cp(bundle, join(tree, 'opt/edgeplane/airgap'), { recursive: true });
  const bin = join(bundle, 'bin');
  for (const name of await readdir(bin).catch(() => [] as string[])) {
    await copyFile(join(bin, name), join(tree, 'bin', name));
    await chmod(join(tree, 'bin', name), 0o755);
  }
}
