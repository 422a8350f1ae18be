import type { KubernetesDriver } from './driver.js';
import { rancherDriver } from './rancher-config.js';

/** k3s: /etc/rancher/k3s/config.yaml, services `k3s` (server) and `k3s-agent` (agent). See rancher-config.ts. */
export const k3sDriver: KubernetesDriver = rancherDriver({
  distribution: 'k3s',
  dir: '/etc/rancher/k3s',
  dataDir: '/var/lib/rancher/k3s',
  serverService: 'k3s',
  agentService: 'k3s-agent',
  serverExtras(spec) {
    const extras: Record<string, unknown> = {};
    // The first server starts embedded etcd so more servers can join later (HA).
    if (spec.init) extras['cluster-init'] = true;
    const cni = spec.network?.cni;
    if (cni && cni !== 'flannel') {
      // Another CNI is installed as an add-on: turn off k3s's flannel and its network policy controller.
      extras['flannel-backend'] = 'none';
      extras['disable-network-policy'] = true;
    } else if (typeof spec.network?.values.backend === 'string') {
      extras['flannel-backend'] = spec.network.values.backend;
    }
    return extras;
  },
});
