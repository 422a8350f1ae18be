import { K3S_CONFIG_KEYS, type KubernetesSpec, RKE2_CONFIG_KEYS } from '@edgeplane/protocol';
import { stringify } from 'yaml';
import { type DriverFile, effectiveTaints, type KubernetesDriver, labelPairs, taintString } from './driver.js';
import { joinUrl, parseEndpoint } from './endpoint.js';

/**
 * k3s and rke2 read the same style of configuration: a YAML file whose keys are the long names of
 * the command-line flags (https://docs.k3s.io/installation/configuration#configuration-file,
 * https://docs.rke2.io/install/configuration#configuration-file). Server nodes run the `server`
 * subcommand (service `k3s` / `rke2-server`), workers the `agent` subcommand (`k3s-agent` /
 * `rke2-agent`).
 */

/** Keys whose profile values are combined with the ones the driver sets instead of replaced. */
const LIST_KEYS = ['tls-san', 'node-label', 'node-taint', 'disable'];

export interface Flavour {
  distribution: 'k3s' | 'rke2';
  dir: string;
  dataDir: string;
  serverService: string;
  agentService: string;
  /** Join port: k3s joins on the API server, rke2 on its supervisor. */
  joinPort?: number;
  /** Distribution-specific keys for a server node (network, cluster-init). */
  serverExtras(spec: KubernetesSpec): Record<string, unknown>;
  extraFiles?(spec: KubernetesSpec): DriverFile[];
}

function asList(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  // A comma-separated string is how the flags take several values.
  return typeof v === 'string'
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [v];
}

function unique(items: unknown[]): unknown[] {
  return [...new Set(items.map((i) => String(i)))];
}

function renderConfig(flavour: Flavour, spec: KubernetesSpec): Record<string, unknown> {
  const server = spec.role === 'control-plane';
  // Workers run the agent subcommand: only its options (@edgeplane/protocol kubernetes/k3s.ts, rke2.ts).
  const table = flavour.distribution === 'k3s' ? K3S_CONFIG_KEYS : RKE2_CONFIG_KEYS;
  const profile = Object.fromEntries(Object.entries(spec.config).filter(([k]) => server || table[k]?.role === 'agent'));
  const managed: Record<string, unknown> = {};
  if (spec.token) managed.token = spec.token;
  if (!spec.init) managed.server = joinUrl(spec.controlPlaneEndpoint, spec.server, flavour.joinPort);
  if (server) Object.assign(managed, flavour.serverExtras(spec));
  managed['node-name'] = spec.nodeName;
  const lists: Record<string, unknown[]> = {
    'node-label': labelPairs(spec.nodeLabels),
    'node-taint': effectiveTaints(spec).map(taintString),
  };
  if (server) {
    lists['tls-san'] = [parseEndpoint(spec.controlPlaneEndpoint).host];
    managed['cluster-cidr'] = spec.podCidr;
    managed['service-cidr'] = spec.serviceCidr;
    managed['write-kubeconfig-mode'] = '0600';
  }
  const out: Record<string, unknown> = { ...profile, ...managed };
  for (const key of LIST_KEYS) {
    // The driver's entries first: the endpoint host leads tls-san whatever the profile adds.
    const merged = unique([...(lists[key] ?? []), ...asList(profile[key])]);
    if (merged.length > 0) out[key] = merged;
    else delete out[key];
  }
  // Stable key order so identical specs give byte-identical files (no needless restarts).
  return Object.fromEntries(
    Object.keys(out)
      .sort()
      .map((k) => [k, out[k]]),
  );
}

export function rancherDriver(flavour: Flavour): KubernetesDriver {
  return {
    distribution: flavour.distribution,
    adminKubeconfig: `${flavour.dir}/${flavour.distribution}.yaml`,
    restartAppliesConfig: true,
    charts: 'helm-controller',
    files(spec) {
      const config = renderConfig(flavour, spec);
      const header = `# Written by the Edgeplane agent for cluster ${spec.cluster}; changes here are overwritten.\n`;
      return [{ path: `${flavour.dir}/config.yaml`, content: header + stringify(config), mode: 0o600 }, ...(flavour.extraFiles?.(spec) ?? [])];
    },
    serviceName(spec) {
      return spec.role === 'control-plane' ? flavour.serverService : flavour.agentService;
    },
    reset() {
      // The <distribution>-killall.sh script the installer puts next to the binary stops the
      // service's containers; then the cluster's datastore, certificates and kubeconfigs go.
      return {
        command: { command: `${flavour.distribution}-killall.sh`, args: [] },
        paths: [`${flavour.dir}/config.yaml`, `${flavour.dir}/${flavour.distribution}.yaml`, `${flavour.dataDir}/server`, `${flavour.dataDir}/agent`],
        keep: [`${flavour.dataDir}/agent/images`],
      };
    },
    nodeKubeconfig(spec) {
      // Agents have no admin kubeconfig; the kubelet's own credentials may read its Node object.
      return spec.role === 'control-plane' ? `${flavour.dir}/${flavour.distribution}.yaml` : `${flavour.dataDir}/agent/kubelet.kubeconfig`;
    },
  };
}
