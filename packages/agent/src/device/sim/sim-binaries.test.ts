import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KUBERNETES_RECORD } from '../../managers/kubernetes/node-files.js';
import { SimDevice } from './sim-device.js';
import { SimRefusal } from './sim-kubernetes.js';
import { SIM_BOOTED_SLOT_FILE } from './sim-slots.js';
import { installedVersion } from './sim-units.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

/** SIMULATION: the version a simulated node reports is that of the binary present, not the one configured. */
describe('simulated distribution binaries', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'ep-simbin-'));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  const put = async (path: string, content: string) => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  };
  /** The agent's record of what it configured (what the old simulation echoed back). */
  const configure = (distribution: string, version: string) => put(KUBERNETES_RECORD, `distribution: ${distribution}\nversion: ${version}\n`);
  /** An OS image in `slot`, booted. */
  const boot = async (slot: 'A' | 'B', digest: string, files: Record<string, string> = {}) => {
    const tree = await mkdtemp(join(tmpdir(), 'ep-simbin-tree-'));
    for (const [p, c] of Object.entries({ 'etc/os-release': 'NAME="Edgeplane OS"\nVERSION_ID=1\n', ...files })) {
      await mkdir(dirname(join(tree, p)), { recursive: true });
      await writeFile(join(tree, p), c);
    }
    const device = new SimDevice({ root });
    if (device.boot === 'unmanaged') throw new Error('expected slots');
    await device.boot.writeSlot(slot, tree, { digest, image: 'r/os:1', name: 'Edgeplane OS', version: '1', writtenAt: new Date().toISOString() });
    await put(SIM_BOOTED_SLOT_FILE, `${slot}\n`);
  };

  it('a version change on the same image keeps the version the image carries; a new image brings the new one', async () => {
    await boot('A', D1);
    await configure('k3s', 'v1.30.4+k3s1');
    expect(await installedVersion(root, 'k3s')).toBe('v1.30.4+k3s1');
    // The agent writes another version into its config: the binary in the image is still the old one.
    await configure('k3s', 'v1.31.1+k3s1');
    expect(await installedVersion(root, 'k3s')).toBe('v1.30.4+k3s1');
    // Repaved onto a new image: the agent writes its configuration there, and that is the image's binary.
    await boot('B', D2);
    await configure('k3s', 'v1.31.1+k3s1');
    expect(await installedVersion(root, 'k3s')).toBe('v1.31.1+k3s1');
    await configure('k3s', 'v1.31.2+k3s1');
    expect(await installedVersion(root, 'k3s')).toBe('v1.31.1+k3s1');
    // Back on the first image (a fallback): its binary again.
    await put(SIM_BOOTED_SLOT_FILE, 'A\n');
    expect(await installedVersion(root, 'k3s')).toBe('v1.30.4+k3s1');
  });

  it("an image's record of what it carries wins over the configuration, and another distribution is refused", async () => {
    await boot('A', D1, { 'usr/lib/edgeplane/image.json': JSON.stringify({ name: 'Edgeplane OS', version: '1', kubernetes: 'k3s v1.30.4+k3s1' }) });
    await configure('k3s', 'v1.31.1+k3s1');
    expect(await installedVersion(root, 'k3s')).toBe('v1.30.4+k3s1');
    await configure('rke2', 'v1.30.4+rke2r1');
    await expect(installedVersion(root, 'rke2')).rejects.toBeInstanceOf(SimRefusal);
  });

  it('a binary in the image or installed from an artifact says its own version', async () => {
    await boot('A', D1, { 'usr/local/bin/k3s': '#!/bin/sh\necho "k3s version v1.29.8+k3s1"\n' });
    await configure('k3s', 'v1.31.1+k3s1');
    expect(await installedVersion(root, 'k3s')).toBe('v1.29.8+k3s1');
    // Agent mode: what the agent installed under /usr/local/bin is what runs.
    await put('usr/local/bin/k3s', '#!/bin/sh\necho "k3s version v1.31.1+k3s1"\n');
    expect(await installedVersion(root, 'k3s')).toBe('v1.31.1+k3s1');
    await put('usr/local/bin/k3s', '#!/bin/sh\necho hello\n');
    await expect(installedVersion(root, 'k3s')).rejects.toThrow(/does not state a k3s version/);
  });

  it('an installed binary wins over the version first configured on a device without an image', async () => {
    await put('etc/os-release', 'NAME="Debian GNU/Linux"\nVERSION_ID=12\n');
    await put(`${IMAGE_KEY}`, JSON.stringify({ none: { distribution: 'k3s', version: 'v1.30.4+k3s1' } }));
    await put('usr/local/bin/k3s', '#!/bin/sh\necho "k3s version v1.31.1+k3s1"\n');
    expect(await installedVersion(root, 'k3s')).toBe('v1.31.1+k3s1');
  });
});

const IMAGE_KEY = 'var/lib/edgeplane-sim/image-binaries.json';
