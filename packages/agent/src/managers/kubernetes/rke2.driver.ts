import { stringify } from 'yaml';
import { isPlainObject, type KubernetesDriver } from './driver.js';
import { RKE2_SUPERVISOR_PORT } from './endpoint.js';
import { rancherDriver } from './rancher-config.js';

/** CNIs rke2 ships (its `cni` option); any other CNI means `cni: none` plus the network add-on. */
const RKE2_CNIS = new Set(['canal', 'calico', 'cilium', 'flannel', 'none']);

/** rke2: /etc/rancher/rke2/config.yaml, services `rke2-server` and `rke2-agent`; joins on the supervisor port 9345. */
export const rke2Driver: KubernetesDriver = rancherDriver({
  distribution: 'rke2',
  dir: '/etc/rancher/rke2',
  dataDir: '/var/lib/rancher/rke2',
  serverService: 'rke2-server',
  agentService: 'rke2-agent',
  joinPort: RKE2_SUPERVISOR_PORT,
  serverExtras(spec) {
    // rke2 has no cluster-init: the server without `server:` initializes (embedded etcd is the default).
    const cni = spec.network?.cni;
    return cni ? { cni: RKE2_CNIS.has(cni) ? cni : 'none' } : {};
  },
  extraFiles(spec) {
    const cni = spec.network?.cni;
    if (spec.role !== 'control-plane' || !cni || cni === 'none' || !RKE2_CNIS.has(cni)) return [];
    const values = spec.network?.values ?? {};
    if (!isPlainObject(values) || Object.keys(values).length === 0) return [];
    // rke2's documented way to set values of its packaged CNI chart: a HelmChartConfig in the server's manifests dir.
    const chart = {
      apiVersion: 'helm.cattle.io/v1',
      kind: 'HelmChartConfig',
      metadata: { name: `rke2-${cni}`, namespace: 'kube-system' },
      spec: { valuesContent: stringify(values) },
    };
    return [{ path: `/var/lib/rancher/rke2/server/manifests/rke2-${cni}-config.yaml`, content: stringify(chart), mode: 0o600 }];
  },
});
