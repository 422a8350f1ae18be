import type { KubernetesSpec } from '@edgeplane/protocol';
import { stringify } from 'yaml';
import type { DeviceFiles } from '../../device/files.js';
import type { DriverFile, KubernetesDriver } from './driver.js';

/**
 * Edgeplane's record of what this node runs: which distribution and version, in which cluster and
 * role. Troubleshooting reads it on a real device; SimDevice's simulated services take the version
 * their "binary" reports from it (there is no binary to ask).
 */
export const KUBERNETES_RECORD = '/etc/edgeplane/kubernetes.yaml';

export interface KubernetesRecord {
  distribution: KubernetesSpec['distribution'];
  version: string;
  cluster: string;
  nodeName: string;
  role: KubernetesSpec['role'];
  init: boolean;
}

/** Every file the node's Kubernetes configuration consists of: the driver's files plus the record. */
export function nodeFiles(driver: KubernetesDriver, spec: KubernetesSpec): DriverFile[] {
  const record: KubernetesRecord = {
    distribution: spec.distribution,
    version: spec.version,
    cluster: spec.cluster,
    nodeName: spec.nodeName,
    role: spec.role,
    init: spec.init,
  };
  return [...driver.files(spec), { path: KUBERNETES_RECORD, content: stringify(record), mode: 0o644 }];
}

/** True when every file already has exactly this content. */
export async function filesMatch(files: DeviceFiles, list: DriverFile[]): Promise<boolean> {
  for (const f of list) if ((await files.readText(f.path)) !== f.content) return false;
  return true;
}

/** Writes the files that differ (atomically, through the Device); returns the paths written. Identical files are left alone. */
export async function writeFiles(files: DeviceFiles, list: DriverFile[]): Promise<string[]> {
  const written: string[] = [];
  for (const f of list) {
    if ((await files.readText(f.path)) === f.content) continue;
    await files.writeAtomic(f.path, f.content, f.mode);
    written.push(f.path);
  }
  return written;
}

/** What a bootstrap marker records: the cluster the node was initialized into or joined. */
export function markerContent(spec: KubernetesSpec): string {
  return `${JSON.stringify({ cluster: spec.cluster, controlPlaneEndpoint: spec.controlPlaneEndpoint, init: spec.init })}\n`;
}
