import { ClusterSpec, rulesFor } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { newJoinToken } from './cluster.controller.js';
import { endpoints, hasNetworkAddress, hostAddress, hostEndpointAddress, renderHostSpec } from './render.js';

const digest = `sha256:${'e'.repeat(64)}`;
const profile = (distribution: 'k3s' | 'rke2' | 'kubeadm', version: string): PinnedProfileSpec => ({
  layers: {
    os: { image: 'reg.lab:5000/edge/os:1', insecure: true, digest },
    kubernetes: { distribution, version, config: { 'tls-san': ['${var.vip}'] } },
    network: { cni: 'calico', version: 'v3.28.0', values: { mtu: '${var.mtu}' } },
    addons: [{ name: 'a', manifest: 'x: ${var.vip}' }],
  },
  variables: [{ name: 'vip' }, { name: 'mtu', default: '1450' }],
});

describe('renderHostSpec', () => {
  const spec = ClusterSpec.parse({
    profile: { name: 'p', revision: 1 },
    nodes: [
      { host: 'cp1', role: 'control-plane' },
      { host: 'w1', role: 'worker' },
    ],
    controlPlaneEndpoint: '10.0.0.100',
    nodeTaints: [{ key: 'edge', value: 'true', effect: 'NoSchedule' }],
    variables: { vip: '10.0.0.100' },
  });

  it('renders the init node with add-ons and no join target, variables substituted', () => {
    const s = renderHostSpec({
      cluster: 'c',
      spec,
      profile: profile('k3s', 'v1.30.4+k3s1'),
      node: spec.nodes[0],
      init: true,
      controlPlaneEndpoint: '10.0.0.100',
    });
    expect(s).toEqual({
      os: { image: 'reg.lab:5000/edge/os:1', digest, insecure: true },
      kubernetes: {
        distribution: 'k3s',
        version: 'v1.30.4+k3s1',
        cluster: 'c',
        nodeName: 'cp1',
        role: 'control-plane',
        init: true,
        controlPlaneEndpoint: 'https://10.0.0.100:6443',
        podCidr: '10.42.0.0/16',
        serviceCidr: '10.43.0.0/16',
        nodeLabels: {},
        nodeTaints: [{ key: 'edge', value: 'true', effect: 'NoSchedule' }],
        controlPlaneSchedulable: true,
        network: { cni: 'calico', version: 'v3.28.0', values: { mtu: '1450' } },
        config: { 'tls-san': ['10.0.0.100'] },
      },
      addons: { items: [{ name: 'a', manifest: 'x: 10.0.0.100' }] },
    });
  });

  it('joins rke2 nodes through the supervisor port, others through the API endpoint', () => {
    const rke2 = renderHostSpec({
      cluster: 'c',
      spec,
      profile: profile('rke2', 'v1.30.4+rke2r1'),
      node: spec.nodes[1],
      init: false,
      controlPlaneEndpoint: '10.0.0.100',
    });
    expect(rke2.kubernetes).toMatchObject({ init: false, role: 'worker', server: 'https://10.0.0.100:9345', controlPlaneEndpoint: 'https://10.0.0.100:6443' });
    expect(rke2.addons).toBeUndefined();
    const kubeadm = renderHostSpec({
      cluster: 'c',
      spec,
      profile: profile('kubeadm', 'v1.30.4'),
      node: spec.nodes[1],
      init: false,
      controlPlaneEndpoint: 'https://vip.shop:443',
    });
    expect(kubeadm.kubernetes).toMatchObject({ server: 'https://vip.shop:443', controlPlaneEndpoint: 'https://vip.shop:443' });
  });

  it("puts the profile's health checks into every node's os spec, variables substituted", () => {
    const healthChecks = [
      { name: 'kubelet', type: 'http' as const, url: 'http://${var.vip}:10248/healthz', timeoutSeconds: 5, retries: 2 },
      { name: 'disk', type: 'command' as const, command: ['test', '-d', '/var/lib/rancher'], timeoutSeconds: 10, retries: 3 },
    ];
    const withChecks = { ...profile('k3s', 'v1.30.4+k3s1'), healthChecks };
    const rendered = spec.nodes.map((node, i) =>
      renderHostSpec({ cluster: 'c', spec, profile: withChecks, node, init: i === 0, controlPlaneEndpoint: '10.0.0.100' }),
    );
    for (const s of rendered) expect(s.os?.healthChecks).toEqual([{ ...healthChecks[0], url: 'http://10.0.0.100:10248/healthz' }, healthChecks[1]]);
    // No checks declared: the os spec carries none (so existing nodes' specs do not change).
    const plain = renderHostSpec({
      cluster: 'c',
      spec,
      profile: profile('k3s', 'v1.30.4+k3s1'),
      node: spec.nodes[1],
      init: false,
      controlPlaneEndpoint: '10.0.0.100',
    });
    expect(plain.os).not.toHaveProperty('healthChecks');
  });

  it('finds the first non-loopback IPv4 of a host, else its hostname', () => {
    const inv = (nics: unknown, hostname = 'nuc') => ({ name: 'edge-1', status: JSON.stringify({ inventory: { hostname, nics } }) });
    expect(hostAddress(inv([{ addresses: ['127.0.0.1/8', 'fe80::1/64', '192.168.1.20/24'] }]))).toBe('192.168.1.20');
    expect(hostAddress(inv([]))).toBe('nuc');
    // A NIC without a DHCP lease holds a link-local IPv4 (169.254/16): never an endpoint, whatever its order.
    expect(
      hostAddress(
        inv([
          { name: 'eth0', addresses: ['169.254.10.2/16'] },
          { name: 'wlan0', addresses: ['10.8.0.4/24'] },
        ]),
      ),
    ).toBe('10.8.0.4');
    expect(hostAddress(inv([{ name: 'eth0', addresses: ['169.254.10.2/16', '2001:db8::4/64'] }]))).toBe('nuc');
    expect(hostAddress(inv([], ''))).toBe('edge-1');
    expect(() => endpoints('k3s', 'https://vip/path')).toThrow();
  });

  it('counts an address other machines reach (not loopback, not link-local) as a network address', () => {
    const inv = (addresses: string[]) => ({ status: JSON.stringify({ inventory: { hostname: 'nuc', nics: [{ name: 'eth0', addresses }] } }) });
    expect(hasNetworkAddress(inv(['fe80::1/64', '169.254.7.7/16', '127.0.0.1/8', '::1/128']))).toBe(false);
    expect(hasNetworkAddress(inv([]))).toBe(false);
    expect(hasNetworkAddress({ status: '{}' })).toBe(false);
    expect(hasNetworkAddress(inv(['fe80::1/64', '192.168.1.20/24']))).toBe(true);
    // IPv6 only: reachable, so the hostname fallback stands (the site's DNS names it).
    expect(hasNetworkAddress(inv(['2001:db8::20/64']))).toBe(true);
  });

  it('skips virtual interfaces (docker0, cni0, flannel.1, veth*, br-*) whatever their order, and says which interface it took', () => {
    const inv = (nics: unknown) => ({ name: 'nuc-7', status: JSON.stringify({ inventory: { hostname: 'nuc', nics } }) });
    const host = inv([
      { name: 'br-5f2c', addresses: ['172.18.0.1/16'] },
      { name: 'cni0', addresses: ['10.42.0.1/24'] },
      { name: 'docker0', addresses: ['172.17.0.1/16'] },
      { name: 'flannel.1', addresses: ['10.42.0.0/32'] },
      { name: 'veth1a2b', addresses: ['169.254.3.3/16'] },
      { name: 'enp3s0', addresses: ['fe80::2/64', '192.168.7.20/24'] },
    ]);
    expect(hostEndpointAddress(host)).toEqual({ address: '192.168.7.20', from: 'host nuc-7, interface enp3s0' });
    // Only virtual interfaces have an address: better than nothing, and said so.
    expect(hostEndpointAddress(inv([{ name: 'docker0', addresses: ['172.17.0.1/16'] }])).from).toMatch(/virtual/);
  });
});

describe('join secret', () => {
  it('is one k3s and rke2 accept as a server token (a bootstrap-format token is refused there)', () => {
    for (let i = 0; i < 20; i++) {
      const token = newJoinToken();
      expect(token).toMatch(/^[0-9a-f]{48}$/);
      expect(rulesFor('k3s').serverTokenProblem(token)).toBeUndefined();
      expect(rulesFor('rke2').serverTokenProblem(token)).toBeUndefined();
    }
  });
});
