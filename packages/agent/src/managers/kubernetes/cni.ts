import { type Addon, cniIsBundled, type HostSpec, type KubernetesSpec, rulesFor } from '@edgeplane/protocol';
import { stringify } from 'yaml';
import type { Device } from '../../device/device.js';
import { FIELD_MANAGER, helmArgs, helmChartObject, manifestObjects } from '../addons/addon-objects.js';
import { ADDON_VALUES_DIR } from '../addons/addons.manager.js';
import type { KubernetesDriver } from './driver.js';

/**
 * The pod network comes before Ready. A kubelet reports NotReady ("cni plugin not initialized")
 * until a CNI runs, and kubeadm brings none (nor k3s with `flannel-backend: none`, nor rke2 with
 * `cni: none`), so the node that initializes such a cluster installs the CNI add-on (the add-on
 * named like the profile's network CNI) as soon as its API answers, before it waits for Ready. The
 * add-ons manager applies it again later with the others (server-side apply: no change).
 */

/** Field manager of what only the CNI bootstrap sets. */
export const CNI_FIELD_MANAGER = 'edgeplane-cni';

/** The CNI add-on the node must install itself, or undefined (a bundled CNI, or a joiner: the CNI's DaemonSet reaches it). */
export function cniToInstall(desired: KubernetesSpec): string | undefined {
  if (!desired.init) return undefined;
  const cni = desired.network?.cni;
  return cniIsBundled(rulesFor(desired.distribution), cni) ? undefined : (cni ?? '');
}

/** The add-on that installs `cni` (the one with the CNI's name), or undefined. */
export function cniAddon(spec: HostSpec | undefined, cni: string): Addon | undefined {
  return spec?.addons?.items.find((a) => a.name === cni);
}

/**
 * Applies the CNI add-on with the admin kubeconfig: its manifest objects, and its chart as a
 * HelmChart with `bootstrap: true` (k3s/rke2 helm-controller: the install job runs on the host
 * network and tolerates NotReady nodes, docs.k3s.io/helm "HelmChart Field Definitions") or through
 * the helm CLI (kubeadm). Returns the number of objects applied.
 */
export async function applyCniAddon(device: Device, driver: KubernetesDriver, addon: Addon, signal: AbortSignal): Promise<number> {
  const client = device.kubernetes!(driver.adminKubeconfig);
  let objects = 0;
  for (const object of manifestObjects(addon)) {
    await client.apply(object, FIELD_MANAGER);
    objects++;
  }
  if (addon.chart && driver.charts === 'helm-controller') {
    const chart = helmChartObject(addon);
    await client.apply(chart, FIELD_MANAGER);
    // `bootstrap` under a field manager of its own: the add-ons manager's later apply of the same
    // HelmChart (without it) leaves it set, so the chart is not reinstalled for nothing.
    const { apiVersion, kind, metadata } = chart;
    await client.apply({ apiVersion, kind, metadata: { name: metadata.name, namespace: metadata.namespace }, spec: { bootstrap: true } }, CNI_FIELD_MANAGER);
    objects++;
  } else if (addon.chart) {
    const valuesFile = `${ADDON_VALUES_DIR}/${addon.name}.values.yaml`;
    await device.files.writeAtomic(valuesFile, stringify(addon.chart.values), 0o600);
    await device.exec!('helm', helmArgs(addon, valuesFile, driver.adminKubeconfig), { timeoutMs: 15 * 60_000, signal });
    objects++;
  }
  return objects;
}
