import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertFits, slotMiBFor } from './build.js';
import { DEFAULT_PACKAGES_FILE, defaultCacheDir, hostSources, readPackageList } from './debian.js';
import { MiB } from './disk-layout.js';
import { installKubernetes, parseKubernetesFlag } from './kubernetes.js';
import { ImageBuildError } from './tools.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ep-os2-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const codeOf = (err: unknown) => (err instanceof ImageBuildError ? err.code : String(err));

describe('package list', () => {
  it('the default list has what OS 2 promises: systemd, containerd, runc, cloud-init, chrony, the kernel, firmware', async () => {
    const names = await readPackageList(DEFAULT_PACKAGES_FILE);
    for (const name of [
      'systemd-sysv',
      'containerd',
      'runc',
      'iptables',
      'nftables',
      'conntrack',
      'ethtool',
      'socat',
      'chrony',
      'ca-certificates',
      'cloud-init',
      'linux-image-amd64',
      'firmware-realtek',
    ])
      expect(names).toContain(name);
  });

  it('reads one name per line with comments, and refuses what is not a package name', async () => {
    const file = join(dir, 'packages.txt');
    await writeFile(file, '# base\nsystemd-sysv   # init\n\nlibstdc++6\n');
    expect(await readPackageList(file)).toEqual(['systemd-sysv', 'libstdc++6']);
    await writeFile(file, 'systemd-sysv\ncurl; rm -rf /\n');
    expect(codeOf(await readPackageList(file).catch((e) => e))).toBe('ImageBuildFailed');
    await writeFile(file, '# nothing\n');
    expect(codeOf(await readPackageList(file).catch((e) => e))).toBe('ImageBuildFailed');
  });
});

describe('apt sources', () => {
  it("takes the host's entries for the suite with the build's components, and leaves other repositories out", async () => {
    const etc = join(dir, 'apt');
    await mkdir(join(etc, 'sources.list.d'), { recursive: true });
    await writeFile(
      join(etc, 'sources.list.d/debian.sources'),
      'Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://other.invalid/x\nSuites: nodistro\nComponents: main\n',
    );
    await writeFile(
      join(etc, 'sources.list.d/old.list'),
      'deb http://mirror.invalid/debian-security bookworm-security main\n# deb http://x.invalid bookworm main\n',
    );
    await writeFile(join(etc, 'sources.list.d/disabled.list.off'), 'deb http://x.invalid bookworm main\n');
    const sources = await hostSources('bookworm', ['main', 'non-free-firmware'], etc);
    expect(sources).toEqual([
      {
        name: 'edgeplane.sources',
        text: 'Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main non-free-firmware\n',
      },
      { name: 'edgeplane.list', text: 'deb http://mirror.invalid/debian-security bookworm-security main non-free-firmware\n' },
    ]);
  });

  it('fails with a clear error when the host has no source for the suite', async () => {
    const err = await hostSources('bookworm', ['main'], join(dir, 'none')).catch((e) => e);
    expect(codeOf(err)).toBe('ImageBuildFailed');
    expect((err as Error).message).toContain('no apt source for bookworm');
  });
});

describe('cache directory', () => {
  it('is EDGEPLANE_IMAGE_CACHE, else under XDG_CACHE_HOME: outside any checkout', () => {
    const saved = { ...process.env };
    try {
      process.env.EDGEPLANE_IMAGE_CACHE = '/srv/cache';
      expect(defaultCacheDir()).toBe('/srv/cache');
      delete process.env.EDGEPLANE_IMAGE_CACHE;
      process.env.XDG_CACHE_HOME = '/var/cache/me';
      expect(defaultCacheDir()).toBe('/var/cache/me/edgeplane/image');
    } finally {
      process.env = saved;
    }
  });
});

describe('Kubernetes binaries by reference', () => {
  async function fakeBinary(name: string, output: string): Promise<string> {
    // A tiny shell script stands in for the real binary (no Kubernetes distribution is available offline).
    const file = join(dir, name);
    await writeFile(file, `#!/bin/sh\necho "${output}"\n`);
    await chmod(file, 0o755);
    return file;
  }

  it('installs k3s with its server and agent units and records the version it prints', async () => {
    const tree = join(dir, 'tree');
    const k3s = await fakeBinary('k3s', 'k3s version v1.30.4+k3s1 (aa2c1a0b)');
    expect(await installKubernetes(tree, [{ name: 'k3s', file: k3s }])).toEqual({ distribution: 'k3s', version: 'v1.30.4+k3s1' });
    expect((await stat(join(tree, 'usr/bin/k3s'))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(tree, 'usr/lib/systemd/system/k3s.service'), 'utf8')).toContain('ExecStart=/usr/bin/k3s server');
    expect(await readFile(join(tree, 'usr/lib/systemd/system/k3s-agent.service'), 'utf8')).toContain('ExecStart=/usr/bin/k3s agent');
  });

  it('installs kubeadm with kubelet and the kubeadm drop-in', async () => {
    const tree = join(dir, 'tree');
    const kubeadm = await fakeBinary('kubeadm', 'kubeadm version: &version.Info{GitVersion:\\"v1.30.4\\"}');
    const kubelet = await fakeBinary('kubelet', 'Kubernetes v1.30.4');
    const record = await installKubernetes(tree, [
      { name: 'kubeadm', file: kubeadm },
      { name: 'kubelet', file: kubelet },
    ]);
    expect(record).toEqual({ distribution: 'kubeadm', version: 'v1.30.4' });
    expect(await readFile(join(tree, 'usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf'), 'utf8')).toContain('KUBELET_KUBEADM_ARGS');
  });

  it('refuses two distributions, kubeadm without kubelet, a missing file and a binary that prints no version', async () => {
    const tree = join(dir, 'tree');
    const k3s = await fakeBinary('k3s', 'k3s version v1.30.4+k3s1');
    const rke2 = await fakeBinary('rke2', 'rke2 version v1.30.4+rke2r1');
    const silent = await fakeBinary('silent', 'hello');
    for (const binaries of [
      [
        { name: 'k3s' as const, file: k3s },
        { name: 'rke2' as const, file: rke2 },
      ],
      [{ name: 'kubeadm' as const, file: k3s }],
      [{ name: 'k3s' as const, file: join(dir, 'missing') }],
      [{ name: 'k3s' as const, file: silent }],
    ]) {
      expect(codeOf(await installKubernetes(tree, binaries).catch((e) => e))).toBe('ImageBuildFailed');
    }
    expect(() => parseKubernetesFlag('k8s=./x')).toThrow(/expected NAME=FILE/);
    expect(parseKubernetesFlag('rke2=./bin/rke2')).toEqual({ name: 'rke2', file: './bin/rke2' });
  });

  it('takes the binary from an image reference (an OCI layout here; docker:// the same way through skopeo)', async () => {
    const image = join(dir, 'k3s-image');
    await mkdir(join(image, 'bin'), { recursive: true });
    await writeFile(join(image, 'bin/k3s'), '#!/bin/sh\necho "k3s version v1.31.1+k3s1 (fake)"\n');
    await chmod(join(image, 'bin/k3s'), 0o755);
    const layout = join(dir, 'layout');
    await oci.writeOciImage({ rootfs: image, layoutDir: layout, tag: 'v1.31.1-k3s1' });
    const tree = join(dir, 'tree');
    expect(await installKubernetes(tree, [{ name: 'k3s', file: `oci:${layout}:v1.31.1-k3s1` }])).toEqual({ distribution: 'k3s', version: 'v1.31.1+k3s1' });
    expect(await readFile(join(tree, 'usr/bin/k3s'), 'utf8')).toContain('v1.31.1+k3s1');
    const err = await installKubernetes(tree, [{ name: 'rke2', file: `oci:${layout}:v1.31.1-k3s1` }]).catch((e) => e);
    expect((err as Error).message).toContain('the image has no /bin/rke2, /usr/bin/rke2, /usr/local/bin/rke2');
  });

  it('records nothing without --kubernetes: the image is OS-only', async () => {
    expect(await installKubernetes(join(dir, 'tree'), [])).toBeUndefined();
  });
});

describe('slot size check', () => {
  it('refuses a squashfs slot image that cannot fit the slot with ImageTooLarge, naming the size to ask for', () => {
    expect(() => assertFits(780 * MiB, 240 * MiB, 320 * MiB)).not.toThrow();
    expect(() => assertFits(780 * MiB, 320 * MiB, 320 * MiB)).not.toThrow();
    const err = (() => {
      try {
        assertFits(780 * MiB, 240 * MiB, 192 * MiB);
      } catch (e) {
        return e;
      }
    })();
    expect(codeOf(err)).toBe('ImageTooLarge');
    expect((err as Error).message).toBe('the root filesystem is 780 MiB, 240 MiB as a squashfs slot; the slot has 192 MiB (raise --slot-size to at least 240)');
  });
});

describe('default slot size', () => {
  it('fits the squashfs slot image with 25% headroom, in 64 MiB steps, and is never refused by the size check', () => {
    // 240 MiB (the default package list's squashfs): 300 MiB with headroom.
    expect(slotMiBFor(240 * MiB)).toBe(320);
    expect(slotMiBFor(1)).toBe(64);
    for (const image of [1, 100, 240, 923, 4000]) {
      const slot = slotMiBFor(image * MiB);
      expect(slot % 64).toBe(0);
      expect(() => assertFits(image * 3 * MiB, image * MiB, slot * MiB)).not.toThrow();
      // The headroom, and not more than one rounding step beyond it.
      expect(slot * MiB).toBeGreaterThanOrEqual(image * MiB * 1.25);
      expect(slot * MiB).toBeLessThan(Math.max(64 * MiB, image * MiB * 1.25 + 64 * MiB));
    }
  });
});
