import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { type Distribution, KUBERNETES_ANNOTATION, type KubernetesSpec, parseKubernetesAnnotation } from '@edgeplane/protocol';
import type { Device } from '../../device/device.js';
import { BlobStore, extractImage, OciError, pullImage, sourceFor } from '../../oci/index.js';
import { ManagerFailure } from '../manager.js';
import { distributionUnits } from './units.js';

/**
 * Agent mode (a host that keeps its own OS, docs/kubernetes.md "Agent mode"): installs the
 * Kubernetes distribution from the OCI artifact the spec names, pinned by digest, onto the host's
 * systemd, where the distribution's own installer would put it. Nothing here starts anything: the
 * kubernetes manager enables and starts the unit through the device's services afterwards.
 *
 * The artifact is an OCI image whose filesystem is the distribution's release laid out under a
 * /usr/local prefix, i.e. the layout of rke2's release tarball (bin/, lib/systemd/system/, share/),
 * which rke2's install script unpacks into /usr/local (docs.rke2.io "Installation Methods",
 * Tarball: "The tarball extracts its contents to /usr/local by default"):
 *  - k3s:     bin/k3s (the release binary). k3s's install.sh (get.k3s.io, v1.30) installs it as
 *             /usr/local/bin/k3s and writes /etc/systemd/system/k3s.service (server) or
 *             k3s-agent.service (agent) plus an environment file beside it; the agent does the same.
 *  - rke2:    the release tarball's tree (bin/rke2, lib/systemd/system/rke2-{server,agent}.service,
 *             share/); its units come from the artifact, or are written like upstream's when absent.
 *  - kubeadm: bin/kubeadm, bin/kubelet (and bin/kubectl), the release binaries. The kubeadm install
 *             guide ("Installing kubeadm", without a package manager) puts them in /usr/local/bin
 *             and installs kubelet.service plus its kubelet.service.d/10-kubeadm.conf drop-in from
 *             kubernetes/release (cmd/krel/templates/latest) with /usr/bin replaced by that directory.
 * The artifact records what it carries in the KUBERNETES_ANNOTATION annotation; an artifact that
 * records another distribution or version than the spec asks for is refused before anything is written.
 */

/** Where Edgeplane records which artifact is installed (the digest; the files it wrote). */
export const ARTIFACT_RECORD = '/var/lib/edgeplane/kubernetes-artifact.json';
/** The prefix the artifact's tree is installed under. */
export const ARTIFACT_PREFIX = '/usr/local';

interface ArtifactRecord {
  digest: string;
  image: string;
  distribution: Distribution;
  /** What the artifact records it carries (its annotation), else the version the spec asked for. */
  version: string;
  files: string[];
}

/** The binaries each distribution's artifact must hold (paths inside the artifact). */
export const ARTIFACT_BINARIES: Record<Distribution, string[]> = {
  k3s: ['bin/k3s'],
  rke2: ['bin/rke2'],
  kubeadm: ['bin/kubeadm', 'bin/kubelet'],
};

/** The binary that reports the node's Kubernetes version, by distribution (a device path). */
export const DISTRIBUTION_BINARY: Record<Distribution, string> = {
  k3s: `${ARTIFACT_PREFIX}/bin/k3s`,
  rke2: `${ARTIFACT_PREFIX}/bin/rke2`,
  kubeadm: `${ARTIFACT_PREFIX}/bin/kubelet`,
};

/** True when the spec's artifact is the one installed (its record and its binaries are there). */
export async function artifactInstalled(device: Device, spec: KubernetesSpec): Promise<boolean> {
  if (!spec.artifact) return true;
  const record = await readRecord(device);
  if (record?.digest !== spec.artifact.digest || record.distribution !== spec.distribution) return false;
  for (const bin of ARTIFACT_BINARIES[spec.distribution]) if ((await device.files.stat(`${ARTIFACT_PREFIX}/${bin}`))?.type !== 'file') return false;
  return true;
}

export interface InstallOptions {
  /** The agent's own directory for the download cache (not the device's). */
  cacheDir: string;
  signal?: AbortSignal;
}

/**
 * Installs the spec's artifact when it is not the installed one. Returns the paths written (empty:
 * already installed). A refused artifact (wrong distribution or version, missing binaries, not
 * pullable by its digest) fails not retryable; a registry that does not answer is retryable.
 */
export async function installArtifact(device: Device, spec: KubernetesSpec, options: InstallOptions): Promise<string[]> {
  const artifact = spec.artifact;
  if (!artifact || (await artifactInstalled(device, spec))) return [];
  const store = new BlobStore(join(options.cacheDir, 'artifact-cache'));
  const tree = await mkdtemp(join(tmpdir(), 'ep-artifact-'));
  try {
    let pulled: Awaited<ReturnType<typeof pullImage>>;
    try {
      pulled = await pullImage({ source: sourceFor(artifact.image, { insecure: artifact.insecure }), digest: artifact.digest, store, signal: options.signal });
    } catch (err) {
      const retryable = err instanceof OciError ? err.retryable : true;
      fail(retryable, `cannot pull the ${spec.distribution} artifact ${artifact.image}@${artifact.digest}: ${(err as Error).message}`);
    }
    const recorded = pulled.manifest.annotations?.[KUBERNETES_ANNOTATION] ?? pulled.config.config?.Labels?.[KUBERNETES_ANNOTATION];
    const carries = parseKubernetesAnnotation(recorded);
    if (recorded !== undefined && (carries?.distribution !== spec.distribution || carries.version !== spec.version))
      fail(false, `artifact ${artifact.image}@${artifact.digest} carries ${recorded}, not ${spec.distribution} ${spec.version}`);
    await extractImage(store, pulled.manifest, tree, options.signal);
    for (const bin of ARTIFACT_BINARIES[spec.distribution])
      if (!(await stat(join(tree, bin)).catch(() => undefined))?.isFile())
        fail(
          false,
          `artifact ${artifact.image}@${artifact.digest} has no ${bin} (a ${spec.distribution} artifact holds ${ARTIFACT_BINARIES[spec.distribution].join(', ')})`,
        );
    const written: string[] = [];
    for (const file of await treeFiles(tree)) {
      const info = await stat(join(tree, file));
      const path = `${ARTIFACT_PREFIX}/${file}`;
      await device.files.writeAtomic(path, await readFile(join(tree, file)), file.startsWith('bin/') ? 0o755 : info.mode & 0o777);
      written.push(path);
    }
    for (const unit of distributionUnits(spec.distribution, { binDir: `${ARTIFACT_PREFIX}/bin` })) {
      // Units the artifact brings (rke2's tarball) win; an environment file the operator filled is kept.
      if (written.includes(unit.path) || (unit.keep && (await device.files.stat(unit.path)))) continue;
      await device.files.writeAtomic(unit.path, unit.content, unit.mode);
      written.push(unit.path);
    }
    const record: ArtifactRecord = {
      digest: artifact.digest,
      image: artifact.image,
      distribution: spec.distribution,
      version: carries?.version ?? spec.version,
      files: written,
    };
    // The record last: an install cut short is done again from the start.
    await device.files.writeAtomic(ARTIFACT_RECORD, `${JSON.stringify(record, null, 2)}\n`, 0o644);
    await store.clear();
    return written;
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

async function readRecord(device: Device): Promise<ArtifactRecord | undefined> {
  const text = await device.files.readText(ARTIFACT_RECORD);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as ArtifactRecord;
  } catch {
    return undefined;
  }
}

async function treeFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await treeFiles(path, base)));
    else if (entry.isFile()) out.push(relative(base, path));
    // Symlinks and devices are not installed: a distribution artifact is files.
  }
  return out.sort();
}

function fail(retryable: boolean, message: string): never {
  throw new ManagerFailure({ phase: 'apply', component: 'kubernetes', retryable, message });
}
