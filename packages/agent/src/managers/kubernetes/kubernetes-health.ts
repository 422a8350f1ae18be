import { KubernetesSpec } from '@edgeplane/protocol';
import { parse } from 'yaml';
import type { Device } from '../../device/device.js';
import type { OsHealthCheck } from '../os/os.manager.js';
import { driverFor } from './drivers.js';
import { KUBERNETES_RECORD, type KubernetesRecord } from './node-files.js';

export interface KubernetesHealthOptions {
  /** How long after boot the node may take to become Ready (default 5 minutes). */
  timeoutMs?: number;
  pollIntervalMs?: number;
}

const RecordSchema = KubernetesSpec.pick({ distribution: true, version: true, cluster: true, nodeName: true, role: true, init: true });

/**
 * An `os` manager health check for a trial boot: a node that was part of a cluster before the
 * update must come back Ready. It reads Edgeplane's record of the node (/etc/edgeplane/kubernetes.yaml);
 * a device that is in no cluster yet passes. Versions are not compared here: a new OS image may
 * carry a newer distribution than the record names until the kubernetes manager runs after commit.
 */
export function kubernetesHealthCheck(device: Device, options: KubernetesHealthOptions = {}): OsHealthCheck {
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  const pollIntervalMs = options.pollIntervalMs ?? (device.kind === 'simulated' ? 50 : 2_000);
  return async () => {
    const text = await device.files.readText(KUBERNETES_RECORD);
    if (text === undefined || !device.kubernetes) return undefined;
    const parsed = RecordSchema.safeParse(parse(text));
    if (!parsed.success) return `${KUBERNETES_RECORD} is not a valid record`;
    const record: KubernetesRecord = parsed.data;
    const client = device.kubernetes(driverFor(record.distribution).nodeKubeconfig(record));
    const deadline = Date.now() + timeoutMs;
    let last = 'not registered';
    for (;;) {
      try {
        const node = await client.readNode(record.nodeName);
        if (node?.ready) return undefined;
        last = node ? (node.message ?? 'NotReady') : 'not registered';
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() >= deadline) return `Kubernetes node ${record.nodeName} is not Ready after boot: ${last}`;
      await new Promise((r) => setTimeout(r, pollIntervalMs));
    }
  };
}
