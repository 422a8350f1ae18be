import type { HostSpec } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';
import { classify } from './classify.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const base: HostSpec = {
  os: { image: 'r.local/os:1', digest: D1 },
  kubernetes: {
    distribution: 'k3s',
    version: 'v1.30.4+k3s1',
    cluster: 'c',
    nodeName: 'n1',
    role: 'control-plane',
    init: true,
    controlPlaneEndpoint: 'https://10.0.0.1:6443',
    podCidr: '10.42.0.0/16',
    serviceCidr: '10.43.0.0/16',
    nodeLabels: {},
    nodeTaints: [],
    controlPlaneSchedulable: true,
    config: {},
  },
  addons: { items: [] },
};
const k = (over: Partial<NonNullable<HostSpec['kubernetes']>>): HostSpec => ({ ...base, kubernetes: { ...base.kubernetes!, ...over } });

/** The examples of the classification table in docs/architecture.md "Cluster upgrades". */
describe('change classification', () => {
  it.each([
    [
      'repave',
      'new OS image digest (and a new Kubernetes version with it)',
      { ...k({ version: 'v1.31.1+k3s1' }), os: { image: 'r.local/os:2', digest: D2 } },
      ['os.digest', 'kubernetes.version'],
    ],
    ['reboot', 'new Kubernetes version on the same image', k({ version: 'v1.31.1+k3s1' }), ['kubernetes.version']],
    [
      'service-restart',
      'a Kubernetes configuration value or node label',
      k({ config: { 'kubelet-arg': ['max-pods=150'] }, nodeLabels: { zone: 'a' } }),
      ['kubernetes.config.kubelet-arg', 'kubernetes.nodeLabels'],
    ],
    ['config-reload', 'an add-on manifest', { ...base, addons: { items: [{ name: 'hello', manifest: 'kind: ConfigMap' }] } }, ['addons']],
    ['no-op', 'the same digest under another tag', { ...base, os: { image: 'r.local/os:stable', digest: D1 } }, ['os.image (same digest)']],
  ] as const)('%s: %s', (change, _what, next, reasons) => {
    expect(classify(base, next as HostSpec)).toEqual({ change, reasons });
  });

  it('ignores the rolling-upgrade fields (maintenance, stage-only) and the join token', () => {
    const staged: HostSpec = { ...k({ token: 'secret' }), os: { ...base.os!, activate: false }, maintenance: { cordon: true } };
    expect(classify(staged, base)).toEqual({ change: 'no-op', reasons: [] });
  });

  it('agent mode: a new artifact (and version) is installed and the service restarted, no reboot', () => {
    const withArtifact = (version: string, digest: string): HostSpec => {
      const { os: _os, ...rest } = k({ version, artifact: { image: `r.local/k3s:${version}`, digest } });
      return rest;
    };
    expect(classify(withArtifact('v1.30.4+k3s1', D1), withArtifact('v1.31.1+k3s1', D2))).toEqual({
      change: 'service-restart',
      reasons: ['kubernetes.artifact', 'kubernetes.version'],
    });
  });

  it('kubeadm: ClusterConfiguration fields are read only at init/join, so changing them restarts nothing (kubeadm rules)', () => {
    const kubeadm: HostSpec = { ...base, kubernetes: { ...base.kubernetes!, distribution: 'kubeadm', version: 'v1.31.1' } };
    const changed: HostSpec = { ...kubeadm, kubernetes: { ...kubeadm.kubernetes!, config: { apiServer: { extraArgs: { 'audit-log-maxage': '7' } } } } };
    expect(classify(kubeadm, changed)).toEqual({ change: 'no-op', reasons: ['kubernetes.config.apiServer (not applied to running nodes: read at init/join)'] });
    // With a node-level change beside it, the node still restarts its service, and both reasons are listed.
    const both: HostSpec = { ...changed, kubernetes: { ...changed.kubernetes!, nodeLabels: { zone: 'a' } } };
    expect(classify(kubeadm, both)).toEqual({
      change: 'service-restart',
      reasons: ['kubernetes.config.apiServer (not applied to running nodes: read at init/join)', 'kubernetes.nodeLabels'],
    });
  });

  it('a node without a spec yet gets everything: repave', () => {
    expect(classify(undefined, base).change).toBe('repave');
  });
});
