/**
 * SIMULATION. The Kubernetes version a simulated node runs is that of the distribution binary
 * present on the simulated device, never the version the agent wrote into its configuration:
 *  1. agent mode: the binary the agent installed from the profile's artifact (artifact-install.ts,
 *     e.g. /usr/local/bin/k3s). A simulated binary is a small file that says its version the way
 *     `k3s --version` does ("k3s version v1.30.4+k3s1"); the simulation reads it instead of running it.
 *  2. managed OS: the binary inside the booted slot's image (/usr/local/bin/<bin> or /usr/bin/<bin>),
 *     else the image's own record of what it carries (image.json "kubernetes": "k3s v1.30.4+k3s1",
 *     the same value as the image's io.edgeplane.kubernetes annotation).
 *  3. an image (or a device without one) that records nothing: the simulation takes it to carry the
 *     version of the first configuration the agent wrote while that image was booted, and keeps it
 *     for that image (recorded in IMAGE_BINARIES_FILE). A version change on the same image
 *     therefore does not change what the node reports, as on a real device; a new image does.
 *     (Right after a reboot into a new image the service starts on the previous configuration,
 *     written before that boot: until the agent writes its configuration on the new image, the node
 *     reports the configured version without recording it.)
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Distribution, parseKubernetesAnnotation } from '@edgeplane/protocol';
import { readJsonFile, writeFileAtomic } from '../../atomic-file.js';
import { DISTRIBUTION_BINARY } from '../../managers/kubernetes/artifact-install.js';
import { KUBERNETES_RECORD } from '../../managers/kubernetes/node-files.js';
import { SimRefusal } from './sim-kubernetes.js';
import { SIM_BOOTED_SLOT_FILE } from './sim-slots.js';

/** Versions taken for images that record none, by image digest ('none': no image booted). */
export const IMAGE_BINARIES_FILE = 'var/lib/edgeplane-sim/image-binaries.json';

/** Largest file read as a simulated binary (a real one is tens of MiB and is not simulated). */
const MAX_SIM_BINARY = 64 * 1024;
const VERSION = /\bv\d+\.\d+\.\d+(?:\+[a-z0-9]+)?/;

/** The binary's file name of each distribution (kubeadm nodes: the kubelet's version is the node's). */
const BINARY_NAME: Record<Distribution, string> = { k3s: 'k3s', rke2: 'rke2', kubeadm: 'kubelet' };

/**
 * The version of `distribution` the simulated device runs. `configured` is asked only for an image
 * that records nothing, the first time a node starts on it. IMAGE_BINARIES_FILE is kept under
 * `stateRoot` (the device root, or a writable directory when the root is a read-only OS).
 */
export async function binaryVersion(
  root: string,
  distribution: Distribution,
  stateRoot: string,
  configured: () => Promise<string | undefined>,
): Promise<string> {
  const installed = await simulatedBinary(join(root, DISTRIBUTION_BINARY[distribution]), distribution);
  if (installed) return installed;
  const slot = await bootedImage(root);
  if (slot) {
    for (const dir of ['usr/local/bin', 'usr/bin']) {
      const inImage = await simulatedBinary(join(slot.rootfs, dir, BINARY_NAME[distribution]), distribution);
      if (inImage) return inImage;
    }
    if (slot.records !== undefined) {
      const carries = parseKubernetesAnnotation(slot.records);
      if (carries?.distribution !== distribution)
        throw new SimRefusal(`no ${distribution} on this simulated device: its OS image ${slot.digest} carries ${slot.records}`, false);
      return carries.version;
    }
  }
  return firstConfigured(root, stateRoot, slot?.digest ?? 'none', distribution, configured);
}

/** When a file was last written (0 when it does not exist). */
async function writtenAt(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.mtimeMs ?? 0;
}

/** The version a simulated binary states; undefined when there is no file. */
async function simulatedBinary(path: string, distribution: Distribution): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  if (info.size > MAX_SIM_BINARY) throw new SimRefusal(`${path} is a real binary; the simulation cannot run ${distribution}`, false);
  const version = VERSION.exec(await readFile(path, 'utf8'))?.[0];
  if (!version) throw new SimRefusal(`${path} does not state a ${distribution} version (a simulated binary says "${distribution} version vX.Y.Z")`, false);
  return version;
}

/** The booted slot's image: its digest, root filesystem and its record of the Kubernetes it carries. */
async function bootedImage(root: string): Promise<{ digest: string; rootfs: string; records?: string } | undefined> {
  const slot = (await readFile(join(root, SIM_BOOTED_SLOT_FILE), 'utf8').catch(() => '')).trim() || 'A';
  const dir = join(root, 'slots', slot);
  const meta = (await readJsonFile(join(dir, 'slot.json')).catch(() => undefined)) as { digest?: string } | undefined;
  if (!meta?.digest) return undefined;
  const rootfs = join(dir, 'rootfs');
  const info = (await readJsonFile(join(rootfs, 'usr/lib/edgeplane/image.json')).catch(() => undefined)) as { kubernetes?: unknown } | undefined;
  return { digest: meta.digest, rootfs, ...(typeof info?.kubernetes === 'string' ? { records: info.kubernetes } : {}) };
}

async function firstConfigured(
  root: string,
  stateRoot: string,
  key: string,
  distribution: Distribution,
  configured: () => Promise<string | undefined>,
): Promise<string> {
  const file = join(stateRoot, IMAGE_BINARIES_FILE);
  const known = ((await readJsonFile(file).catch(() => undefined)) ?? {}) as Record<string, { distribution: Distribution; version: string }>;
  const baked = known[key];
  if (baked) {
    if (baked.distribution !== distribution)
      throw new SimRefusal(`no ${distribution} on this simulated device: its image (${key}) carries ${baked.distribution} ${baked.version}`, false);
    return baked.version;
  }
  const version = await configured();
  if (!version) throw new SimRefusal(`no ${distribution} installed on this simulated device`, false);
  // A configuration written before the current boot belongs to the image booted before: not this image's.
  if ((await writtenAt(join(root, KUBERNETES_RECORD))) < (await writtenAt(join(root, SIM_BOOTED_SLOT_FILE)))) return version;
  await writeFileAtomic(file, `${JSON.stringify({ ...known, [key]: { distribution, version } }, null, 2)}\n`, 0o644);
  return version;
}
