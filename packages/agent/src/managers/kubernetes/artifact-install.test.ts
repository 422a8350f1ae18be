import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Distribution, KubernetesSpec } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushDistributionArtifact, startRegistry, type TestRegistry } from '../../../../../test/support/registry.js';
import { LinuxDevice } from '../../device/linux/linux-device.js';
import { ManagerFailure } from '../manager.js';
import { ARTIFACT_RECORD, installArtifact } from './artifact-install.js';
import { driverFor } from './drivers.js';
import { nodeFiles, writeFiles } from './node-files.js';

const run = promisify(execFile);

/**
 * Agent mode on this real Debian machine: the install step puts a distribution artifact (pulled from
 * a real registry) into a LinuxDevice whose root is a temp directory, exactly where the upstream
 * installers put it, and systemd itself (`systemd-analyze verify --root`) accepts the units with
 * their binaries in place. Nothing is started: the install step never touches the service manager.
 */
const VERSIONS: Record<Distribution, string> = { k3s: 'v1.30.4+k3s1', rke2: 'v1.30.4+rke2r1', kubeadm: 'v1.30.4' };
const UNITS: Record<Distribution, string[]> = {
  k3s: ['/etc/systemd/system/k3s.service', '/etc/systemd/system/k3s-agent.service'],
  rke2: ['/usr/local/lib/systemd/system/rke2-server.service', '/usr/local/lib/systemd/system/rke2-agent.service'],
  kubeadm: ['/etc/systemd/system/kubelet.service'],
};
const BINARIES: Record<Distribution, string[]> = {
  k3s: ['/usr/local/bin/k3s'],
  rke2: ['/usr/local/bin/rke2'],
  kubeadm: ['/usr/local/bin/kubeadm', '/usr/local/bin/kubelet', '/usr/local/bin/kubectl'],
};

describe('distribution artifact install on a real systemd machine (agent mode)', () => {
  let registry: TestRegistry;
  let dir: string;
  const artifacts = new Map<Distribution, { ref: string; digest: string }>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-artifact-'));
    registry = await startRegistry();
    for (const d of ['k3s', 'rke2', 'kubeadm'] as const) artifacts.set(d, await pushDistributionArtifact(registry, join(dir, 'layout'), d, VERSIONS[d]));
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const spec = (distribution: Distribution, over: Partial<KubernetesSpec> = {}): KubernetesSpec => {
    const a = artifacts.get(distribution)!;
    return {
      distribution,
      version: VERSIONS[distribution],
      cluster: 'edge',
      nodeName: 'byo-1',
      role: 'control-plane',
      init: true,
      controlPlaneEndpoint: 'https://10.0.0.5:6443',
      token: distribution === 'kubeadm' ? 'abcdef.0123456789abcdef' : 'K10secret::server:0123456789abcdef',
      podCidr: '10.42.0.0/16',
      serviceCidr: '10.43.0.0/16',
      nodeLabels: {},
      nodeTaints: [],
      controlPlaneSchedulable: true,
      config: {},
      ...(distribution === 'k3s' ? {} : { network: { cni: 'canal', values: {} } }),
      artifact: { image: a.ref, digest: a.digest },
      ...over,
    };
  };

  it.each(['k3s', 'rke2', 'kubeadm'] as const)(
    '%s: binary, config and units land where upstream puts them and systemd-analyze verify accepts the units',
    async (distribution) => {
      const root = await mkdtemp(join(dir, `root-${distribution}-`));
      const device = new LinuxDevice({ root, slots: 'unmanaged' });
      const s = spec(distribution);
      const written = await installArtifact(device, s, { cacheDir: join(root, '..', `cache-${distribution}`) });
      for (const bin of BINARIES[distribution]) {
        expect(written).toContain(bin);
        expect((await stat(join(root, bin))).mode & 0o777).toBe(0o755);
      }
      for (const unit of UNITS[distribution]) expect(written).toContain(unit);
      if (distribution === 'kubeadm') expect(written).toContain('/etc/systemd/system/kubelet.service.d/10-kubeadm.conf');
      // The driver's configuration goes where the distribution reads it (the manager writes it next).
      const config = await writeFiles(device.files, nodeFiles(driverFor(distribution), s));
      expect(config).toContain(distribution === 'kubeadm' ? driverFor('kubeadm').files(s)[0].path : `/etc/rancher/${distribution}/config.yaml`);
      expect(JSON.parse(await readFile(join(root, ARTIFACT_RECORD), 'utf8'))).toMatchObject({ digest: s.artifact!.digest, version: VERSIONS[distribution] });

      // systemd resolves the units' dependencies (multi-user.target, network-online.target) from
      // the same root: give it this machine's own unit directory there.
      await cp('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
      const names = UNITS[distribution].map((u) => u.slice(u.lastIndexOf('/') + 1));
      const verified = await run('systemd-analyze', ['verify', '--man=no', `--root=${root}`, ...names]).then(
        (r) => ({ code: 0, out: r.stderr }),
        (e: { code: number; stderr: string }) => ({ code: e.code, out: e.stderr }),
      );
      expect(verified, verified.out).toEqual({ code: 0, out: '' });

      // The same artifact again: nothing to do.
      expect(await installArtifact(device, s, { cacheDir: join(root, '..', `cache-${distribution}`) })).toEqual([]);
    },
    60_000,
  );

  it('verify fails without the binary: the check is real', async () => {
    const root = await mkdtemp(join(dir, 'root-nobin-'));
    const device = new LinuxDevice({ root, slots: 'unmanaged' });
    await installArtifact(device, spec('k3s'), { cacheDir: join(dir, 'cache-nobin') });
    await cp('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
    await rm(join(root, 'usr/local/bin/k3s'));
    await expect(run('systemd-analyze', ['verify', '--man=no', `--root=${root}`, 'k3s.service'])).rejects.toMatchObject({
      stderr: expect.stringContaining('/usr/local/bin/k3s'),
    });
  });

  it('refuses an artifact that carries another version than the spec asks for, before writing anything', async () => {
    const lying = await pushDistributionArtifact(registry, join(dir, 'layout'), 'k3s', 'v1.31.1+k3s1');
    const root = await mkdtemp(join(dir, 'root-lie-'));
    const device = new LinuxDevice({ root, slots: 'unmanaged' });
    const err = await installArtifact(device, spec('k3s', { artifact: { image: lying.ref, digest: lying.digest } }), {
      cacheDir: join(dir, 'cache-lie'),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ManagerFailure);
    expect(err.detail).toMatchObject({ retryable: false, message: expect.stringContaining('carries k3s v1.31.1+k3s1, not k3s v1.30.4+k3s1') });
    expect(await device.files.list('/')).toEqual([]);
  });

  it('refuses an artifact without the distribution binary', async () => {
    // Says it carries rke2, holds k3s.
    const wrong = await pushDistributionArtifact(registry, join(dir, 'layout'), 'k3s', 'v1.30.5+k3s1', { records: 'rke2 v1.30.5+rke2r1' });
    const root = await mkdtemp(join(dir, 'root-nobin2-'));
    const device = new LinuxDevice({ root, slots: 'unmanaged' });
    const err = await installArtifact(device, spec('rke2', { version: 'v1.30.5+rke2r1', artifact: { image: wrong.ref, digest: wrong.digest } }), {
      cacheDir: join(dir, 'cache-nobin2'),
    }).catch((e) => e);
    expect(err.detail).toMatchObject({ retryable: false, message: expect.stringContaining('has no bin/rke2') });
    expect(await device.files.stat(ARTIFACT_RECORD)).toBeUndefined();
    expect(await device.files.stat('/usr/local/bin/k3s')).toBeUndefined();
  });
});
