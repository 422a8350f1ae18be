import { type ClusterNode, type ClusterSpec, EdgeplaneError, type HostSpec, type OsSpec, osAttempt, substituteVariables } from '@edgeplane/protocol';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { kubeVipAddon } from './kube-vip.js';
import { requireOsLayer } from './os-mode.js';

/** API server port, and rke2's separate supervisor (join) port. */
const API_PORT = 6443;
const RKE2_JOIN_PORT = 9345;

/**
 * Interfaces that are not the host's own network: container and VM bridges, CNI and tunnel devices,
 * kube-proxy's IPVS dummy. Their addresses are private to the host (docker0 is 172.17.0.1 on every
 * Docker host; cni0/flannel.1 carry a previous cluster's pod network), so a control-plane endpoint
 * there is unreachable from other nodes.
 */
export const VIRTUAL_INTERFACE =
  /^(lo|docker\d*|cni\d*|flannel[.-].*|flannel\d*|veth.*|br-.*|virbr.*|vnet\d*|kube-ipvs\d*|kube-bridge|cali.*|tunl\d*|vxlan[.-].*|cilium_.*|lxc.*|weave|datapath|genev_sys_.*|nodelocaldns|dummy\d*|podman\d*|tun\d*|tap\d*|wg\d*|tailscale\d*|zt.*)$/;

/**
 * Addresses no other machine reaches a host at: loopback, and link-local (an interface that is up
 * before DHCP or router advertisements answered has only its fe80:: address).
 */
const LOCAL_ONLY = /^(127\.|169\.254\.|::1$|fe80:)/i;

/**
 * The address other nodes reach this host at: the first IPv4 that is neither loopback nor
 * link-local (169.254/16: a NIC that got no DHCP lease) of a non-virtual interface in the
 * inventory's order (then of a virtual one; then the hostname; then the Edgeplane
 * name), and where it came from, for the cluster's status.
 */
export function hostEndpointAddress(host: { name: string; status: string }): { address: string; from: string } {
  const inv = (JSON.parse(host.status) as { inventory?: { hostname?: string; nics?: { name?: string; addresses?: string[] }[] } }).inventory;
  const ipv4 = (nic: { addresses?: string[] }) =>
    (nic.addresses ?? []).map((a) => a.replace(/\/\d+$/, '')).find((ip) => /^(\d{1,3}\.){3}\d{1,3}$/.test(ip) && !LOCAL_ONLY.test(ip));
  const nics = inv?.nics ?? [];
  for (const virtual of [false, true]) {
    for (const nic of nics) {
      if (VIRTUAL_INTERFACE.test(nic.name ?? '') !== virtual) continue;
      const ip = ipv4(nic);
      if (ip) return { address: ip, from: `host ${host.name}, interface ${nic.name ?? '?'}${virtual ? ' (virtual: no other interface has an IPv4)' : ''}` };
    }
  }
  if (inv?.hostname) return { address: inv.hostname, from: `host ${host.name}, hostname (no reachable IPv4 address in its inventory)` };
  return { address: host.name, from: `host ${host.name}, its name (no address in its inventory)` };
}

/**
 * Whether the host's inventory shows an address another machine can reach it at. A host reporting
 * none has not finished bringing up its network (an agent can report its inventory while DHCP is
 * still under way): the hostname fallback of hostEndpointAddress would then be pinned as a cluster
 * endpoint that nothing resolves, so the cluster waits for an address instead.
 */
export function hasNetworkAddress(host: { status: string }): boolean {
  const inv = (JSON.parse(host.status) as { inventory?: { nics?: { addresses?: string[] }[] } }).inventory;
  return (inv?.nics ?? []).some((nic) => (nic.addresses ?? []).some((a) => a !== '' && !LOCAL_ONLY.test(a.replace(/\/\d+$/, ''))));
}

/** The address other nodes reach this host at (see hostEndpointAddress). */
export function hostAddress(host: { name: string; status: string }): string {
  return hostEndpointAddress(host).address;
}

/**
 * controlPlaneEndpoint (what certificates and kubeconfigs name) and the join target for other
 * nodes: the same URL for k3s and kubeadm, the supervisor port 9345 for rke2.
 */
export function endpoints(distribution: string, endpoint: string): { controlPlaneEndpoint: string; server: string } {
  const url = new URL(endpoint.includes('://') ? endpoint : `https://${endpoint}`);
  const host = url.hostname;
  if (!host || url.pathname.length > 1 || !/^https?:$/.test(url.protocol)) throw new Error(`not an endpoint: ${endpoint}`);
  // URL drops a scheme's default port (https://vip:443 has port ''); keep what was written.
  const port = url.port || /:(\d+)\/?$/.exec(endpoint)?.[1] || API_PORT;
  const controlPlaneEndpoint = `https://${host}:${port}`;
  return { controlPlaneEndpoint, server: distribution === 'rke2' ? `https://${host}:${RKE2_JOIN_PORT}` : controlPlaneEndpoint };
}

export function variableValues(profile: PinnedProfileSpec, spec: ClusterSpec): Record<string, string> {
  const values: Record<string, string> = {};
  for (const v of profile.variables) values[v.name] = spec.variables[v.name] ?? v.default ?? '';
  return values;
}

export interface RenderInput {
  cluster: string;
  spec: ClusterSpec;
  profile: PinnedProfileSpec;
  node: ClusterNode;
  init: boolean;
  controlPlaneEndpoint: string;
}

/**
 * The os part of a host spec from a pinned profile revision, variables substituted. Health checks
 * ride in the os spec, so a host runs the checks of the image it switches to. Shared by cluster
 * nodes and hosts with a host OS profile (edgehost/host-os-profile.ts): the same A/B rules for both.
 */
export function renderOs(profile: PinnedProfileSpec, values: Record<string, string>, ref = { name: '?', revision: 0 }): OsSpec {
  const os = substituteVariables(requireOsLayer(profile, ref, 'an OS image update'), values);
  const healthChecks = profile.healthChecks?.length ? substituteVariables(profile.healthChecks, values) : undefined;
  return { image: os.image, digest: os.digest, ...(os.insecure ? { insecure: true } : {}), ...(healthChecks ? { healthChecks } : {}) };
}

/** spec.os as the agent gets it: with the host's retry counter (see OsSpec.retry), when there is one. */
export function withRetry(os: OsSpec, osRetry: number | undefined): OsSpec {
  return osRetry ? { ...os, retry: String(osRetry) } : os;
}

/** The attempt the host's agent is asked to make at its desired image (osAttempt of what it is sent). */
export function desiredOsAttempt(host: { spec: string; os_retry?: number }): { digest: string; attempt: string } | undefined {
  const os = (JSON.parse(host.spec) as { os?: OsSpec }).os;
  return os ? { digest: os.digest, attempt: osAttempt(withRetry(os, host.os_retry)) } : undefined;
}

/** A cluster refuses a profile revision without a kubernetes layer (a host OS profile). */
export function requireKubernetes<K>(k: K | undefined, name: string, revision: number): K {
  if (!k)
    throw new EdgeplaneError(
      'ProfileHasNoKubernetes',
      `cluster profile "${name}" revision ${revision} has no kubernetes layer: it is a host OS profile (EdgeHost spec.osProfile), not one for clusters`,
      { profile: name, revision },
    );
  return k;
}

/**
 * The desired host spec of one node: what the agent's os, kubernetes and addons managers converge
 * to. Without the join token: that is filled in when the spec is sent (ClusterController.fillSecrets),
 * so EdgeHost.spec in the store and the API never holds it.
 */
export function renderHostSpec(r: RenderInput): HostSpec {
  const values = variableValues(r.profile, r.spec);
  const layers = substituteVariables(r.profile.layers, values);
  const kubernetes = requireKubernetes(layers.kubernetes, r.spec.profile.name, r.spec.profile.revision);
  const ep = endpoints(kubernetes.distribution, r.controlPlaneEndpoint);
  // No os layer: the hosts keep their own OS and the distribution comes from the artifact (os-mode.ts).
  const artifact = layers.kubernetes?.artifact;
  const spec: HostSpec = {
    ...(r.profile.layers.os ? { os: renderOs(r.profile, values) } : {}),
    kubernetes: {
      distribution: kubernetes.distribution,
      version: kubernetes.version,
      cluster: r.cluster,
      nodeName: r.node.host,
      role: r.node.role,
      init: r.init,
      controlPlaneEndpoint: ep.controlPlaneEndpoint,
      ...(r.init ? {} : { server: ep.server }),
      podCidr: r.spec.podCidr,
      serviceCidr: r.spec.serviceCidr,
      nodeLabels: { ...r.spec.nodeLabels, ...r.node.labels },
      nodeTaints: r.spec.nodeTaints,
      controlPlaneSchedulable: r.spec.controlPlaneSchedulable,
      ...(layers.network ? { network: { cni: layers.network.cni, version: layers.network.version, values: layers.network.values } } : {}),
      config: kubernetes.config,
      ...(artifact ? { artifact: { image: artifact.image, digest: artifact.digest, ...(artifact.insecure ? { insecure: true } : {}) } } : {}),
    },
  };
  // Add-ons are applied to the cluster once, from the node that initialized it; kube-vip first.
  if (r.init) spec.addons = { items: r.spec.vip ? [kubeVipAddon(r.spec.vip), ...layers.addons] : layers.addons };
  return spec;
}

/** JSON with sorted keys, to compare specs regardless of key order. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
