import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { distributionUnits } from '@edgeplane/agent';
import { ImageBuildError, runTool, which } from './tools.js';

/** OCI annotation (and config label) naming the Kubernetes distribution an image carries, e.g. `k3s v1.30.4+k3s1`. */
export const KUBERNETES_ANNOTATION = 'io.edgeplane.kubernetes';

export type KubernetesBinaryName = 'k3s' | 'rke2' | 'kubeadm' | 'kubelet';

/** `--kubernetes NAME=FILE|REF`: a distribution binary the user supplies (nothing else is downloaded). */
export interface KubernetesBinary {
  name: KubernetesBinaryName;
  /**
   * Path of the binary on the build machine, or an image reference skopeo understands
   * (`docker://registry/repo:tag`, `oci:DIR:TAG`, `oci-archive:FILE`) whose filesystem holds it at
   * /bin/NAME, /usr/bin/NAME or /usr/local/bin/NAME (as rancher/k3s does).
   */
  file: string;
  /** Its version; default: what `FILE --version` prints (k3s, rke2, kubeadm and kubelet all answer it). */
  version?: string;
}

/** What the image records: the distribution (k3s, rke2 or kubeadm) and its version. */
export interface KubernetesRecord {
  distribution: 'k3s' | 'rke2' | 'kubeadm';
  version: string;
}

/** Parses `k3s=./k3s` or `k3s=docker://...` (also `rke2=`, `kubeadm=`, `kubelet=`). */
export function parseKubernetesFlag(value: string): KubernetesBinary {
  const m = /^(k3s|rke2|kubeadm|kubelet)=(.+)$/.exec(value);
  if (!m)
    throw new ImageBuildError(
      'ImageBuildFailed',
      `--kubernetes ${value}: expected NAME=FILE with NAME one of k3s, rke2, kubeadm, kubelet (e.g. --kubernetes k3s=./k3s)`,
    );
  return { name: m[1] as KubernetesBinaryName, file: m[2] };
}

/**
 * Places user-supplied Kubernetes binaries and the distribution's systemd units into the image tree
 * and returns what the image carries. The units are installed but not enabled: the agent starts the
 * one a cluster's role needs (services `k3s`/`k3s-agent`, `rke2-server`/`rke2-agent`, `kubelet`).
 * Binaries go to /usr/bin (the image's own, read-only), not /usr/local/bin (a device-writable overlay).
 */
export async function installKubernetes(tree: string, binaries: KubernetesBinary[]): Promise<KubernetesRecord | undefined> {
  if (!binaries.length) return undefined;
  const names = binaries.map((b) => b.name).sort();
  const distribution = names.includes('k3s') ? 'k3s' : names.includes('rke2') ? 'rke2' : 'kubeadm';
  const expected = { k3s: ['k3s'], rke2: ['rke2'], kubeadm: ['kubeadm', 'kubelet'] }[distribution];
  if (names.join(',') !== expected.join(','))
    throw new ImageBuildError(
      'ImageBuildFailed',
      `--kubernetes takes one distribution: k3s=FILE, rke2=FILE, or kubeadm=FILE with kubelet=FILE (got ${names.join(', ')})`,
    );
  const versions: string[] = [];
  const work = await mkdtemp(join(tmpdir(), 'edgeplane-k8s-'));
  try {
    for (const given of binaries) {
      const binary = isImageRef(given.file) ? { ...given, file: await binaryFromImage(given, work) } : given;
      const st = await stat(binary.file).catch(() => undefined);
      if (!st?.isFile()) throw new ImageBuildError('ImageBuildFailed', `--kubernetes ${binary.name}=${binary.file}: no such file`);
      await mkdir(join(tree, 'usr/bin'), { recursive: true });
      await copyFile(binary.file, join(tree, 'usr/bin', binary.name));
      await chmod(join(tree, 'usr/bin', binary.name), 0o755);
      versions.push(binary.version ?? (await binaryVersion(binary)));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  // The image's own units (read-only /usr), the same texts agent mode writes (@edgeplane/agent).
  for (const unit of distributionUnits(distribution, { binDir: '/usr/bin', unitDir: '/usr/lib/systemd/system' })) {
    await mkdir(join(tree, unit.path, '..'), { recursive: true });
    await writeFile(join(tree, unit.path), unit.content, { mode: unit.mode });
  }
  return { distribution, version: versions[0] };
}

const IMAGE_REF = /^(docker:\/\/|oci:|oci-archive:)/;

export function isImageRef(value: string): boolean {
  return IMAGE_REF.test(value);
}

/**
 * Copies the image with skopeo into an OCI layout under `work` and unpacks, layer by layer, the
 * places a distribution image keeps its binary; returns the binary's path.
 */
async function binaryFromImage(binary: KubernetesBinary, work: string): Promise<string> {
  await which('skopeo');
  const layout = join(work, `${binary.name}-oci`);
  await runTool('skopeo', ['copy', '--quiet', binary.file, `oci:${layout}:image`], { timeoutMs: 20 * 60_000 }).catch((err: Error) => {
    throw new ImageBuildError('ImageBuildFailed', `--kubernetes ${binary.name}=${binary.file}: cannot copy the image: ${err.message}`);
  });
  const blob = (digest: string) => join(layout, 'blobs', digest.replace(':', '/'));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0].digest), 'utf8')) as { layers: { digest: string }[] };
  const root = join(work, `${binary.name}-root`);
  await mkdir(root, { recursive: true });
  const candidates = ['bin', 'usr/bin', 'usr/local/bin'].map((d) => `${d}/${binary.name}`);
  for (const layer of manifest.layers) {
    // Members a layer does not have make tar exit non-zero after extracting the ones it has.
    await runTool('tar', ['-xf', blob(layer.digest), '-C', root, '--no-same-owner', '--wildcards', ...candidates.flatMap((c) => [c, `./${c}`])]).catch(
      () => undefined,
    );
  }
  for (const c of candidates) if ((await stat(join(root, c)).catch(() => undefined))?.isFile()) return join(root, c);
  throw new ImageBuildError('ImageBuildFailed', `--kubernetes ${binary.name}=${binary.file}: the image has no ${candidates.map((c) => `/${c}`).join(', ')}`);
}

/** The annotation value: `<distribution> <version>`. */
export function kubernetesAnnotation(record: KubernetesRecord): string {
  return `${record.distribution} ${record.version}`;
}

/** The first `vX.Y.Z...` in `FILE --version` (k3s: "k3s version v1.30.4+k3s1 (...)", kubelet: "Kubernetes v1.30.4"). */
function binaryVersion(binary: KubernetesBinary): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary.file, ['--version'], { timeout: 30_000 }, (err, stdout, stderr) => {
      const version = /\bv\d+\.\d+\.\d+[^\s,)"'}]*/.exec(`${stdout}\n${stderr}`)?.[0];
      if (version) return resolve(version);
      reject(
        new ImageBuildError(
          'ImageBuildFailed',
          `--kubernetes ${binary.name}=${binary.file}: "${binary.file} --version" printed no version (${err ? err.message : stdout.trim().slice(0, 200)})`,
        ),
      );
    });
  });
}
