import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { pushLayout } from '@edgeplane/cli';
import freePort from './free-port.js';

export interface TestRegistry {
  /** http://127.0.0.1:<port> */
  url: string;
  /** 127.0.0.1:<port>, the registry part of an image reference. */
  host: string;
  /** The registry's filesystem storage (tests tamper with blobs here). */
  storageDir: string;
  /** With `accessLog`: the registry's own access log so far, one parsed request per line. */
  requests(): RegistryRequest[];
  stop(): Promise<void>;
}

/** One line of the registry's access log (Apache combined format). */
export interface RegistryRequest {
  method: string;
  path: string;
  status: number;
  /** Response body bytes the registry wrote. */
  bytes: number;
}

/**
 * Starts a real OCI registry (Debian's `docker-registry`, the CNCF distribution registry) on a free
 * loopback port with filesystem storage in a temp dir and no auth. Plain HTTP: pulls use `insecure`.
 */
export async function startRegistry(options: { address?: string; accessLog?: boolean } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'ep-registry-'));
  const port = await freePort();
  // `address`: another address of this machine (e.g. a libvirt network's gateway, where guests reach it).
  const host = `${options.address ?? '127.0.0.1'}:${port}`;
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      // The access log (distribution's combined-format request log, on stdout) only when a test reads it.
      `log: {level: error, accesslog: {disabled: ${!options.accessLog}}}`,
      `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
      `http: {addr: "${host}", secret: edgeplane-test}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', options.accessLog ? 'pipe' : 'ignore', 'pipe'] });
  const requests: RegistryRequest[] = [];
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    pending += d;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      // 127.0.0.1 - - [07/Dec/2026:03:00:00 +0000] "GET /v2/x/blobs/sha256:... HTTP/1.1" 206 65536 "" "agent"
      const m = /"(\w+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/.exec(line);
      if (m) requests.push({ method: m[1], path: m[2], status: Number(m[3]), bytes: m[4] === '-' ? 0 : Number(m[4]) });
    }
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://${host}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    const ok = await fetch(`${url}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    host,
    storageDir: join(dir, 'data'),
    requests: () => [...requests],
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Pushes the image tagged `tag` in an OCI layout to `<registryHost>/<repository>:<tag>` with skopeo
 * (plain HTTP), as `edgeplane image build --push --insecure` does. Returns the manifest digest the
 * registry stores (skopeo keeps the OCI manifest as is).
 */
export function pushOciLayout(layoutDir: string, ref: string): Promise<string> {
  return pushLayout(layoutDir, ref.slice(ref.lastIndexOf(':') + 1), ref, true);
}

/**
 * Builds an Edgeplane OS image (the project's OCI writer) into `layoutDir` and pushes it to
 * `<registry>/edge/os:<version>`; returns its manifest digest.
 */
export async function pushOsImage(registry: TestRegistry, layoutDir: string, version: string, files?: Record<string, string>): Promise<string> {
  await oci.writeOsImage({ layoutDir, tag: version, name: 'Edgeplane OS', version, ...(files ? { files } : {}) });
  return pushOciLayout(layoutDir, `${registry.host}/edge/os:${version}`);
}

/**
 * Builds a SIMULATED Kubernetes distribution artifact (agent mode, docs/kubernetes.md) into
 * `layoutDir` and pushes it to `<registry>/edge/<distribution>:<version with + as ->`; returns its
 * manifest digest. Its files are laid out like the real ones (bin/k3s; bin/rke2; bin/kubeadm +
 * bin/kubelet + bin/kubectl) but each binary is a small script that prints its version like the
 * real `--version` does, which is what the simulator reads. It records what it carries in the
 * io.edgeplane.kubernetes annotation (`records` overrides that, e.g. to lie about it).
 */
export async function pushDistributionArtifact(
  registry: TestRegistry,
  layoutDir: string,
  distribution: 'k3s' | 'rke2' | 'kubeadm',
  version: string,
  options: { records?: string; files?: Record<string, string> } = {},
): Promise<{ ref: string; digest: string }> {
  const rootfs = await mkdtemp(join(tmpdir(), 'ep-artifact-tree-'));
  try {
    const bins = distribution === 'kubeadm' ? ['kubeadm', 'kubelet', 'kubectl'] : [distribution];
    const files: Record<string, string> = {
      ...Object.fromEntries(bins.map((b) => [`bin/${b}`, `#!/bin/sh\n# SIMULATED ${distribution} binary (Edgeplane tests)\necho "${b} version ${version}"\n`])),
      ...options.files,
    };
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(rootfs, path)), { recursive: true });
      await writeFile(join(rootfs, path), content, { mode: 0o755 });
    }
    const tag = version.replace(/\+/g, '-');
    await oci.writeOciImage({ rootfs, layoutDir, tag, labels: { 'io.edgeplane.kubernetes': options.records ?? `${distribution} ${version}` } });
    const ref = `${registry.host}/edge/${distribution}:${tag}`;
    return { ref, digest: await pushOciLayout(layoutDir, ref) };
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}
