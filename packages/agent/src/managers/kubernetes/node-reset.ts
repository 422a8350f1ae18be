import type { Distribution } from '@edgeplane/protocol';
import type { Device } from '../../device/device.js';
import { ExecError } from '../../device/exec.js';
import { driverFor } from './drivers.js';
import { KUBERNETES_RECORD } from './node-files.js';

/**
 * What the manager last set up on this node, kept on the device (not in the agent's data dir) so
 * that "is there a node to take down?" can be answered before any context is at hand.
 */
export const NODE_STATE = '/var/lib/edgeplane/kubernetes/state.json';

export interface NodeState {
  distribution: Distribution;
  service: string;
  nodeName: string;
  cluster: string;
}

export async function readNodeState(device: Device): Promise<NodeState | undefined> {
  const text = await device.files.readText(NODE_STATE).catch(() => undefined);
  if (!text) return undefined;
  try {
    return (JSON.parse(text) as NodeState | null) ?? undefined;
  } catch {
    return undefined; // a torn or foreign file: nothing known to take down
  }
}

export async function writeNodeState(device: Device, state: NodeState): Promise<void> {
  await device.files.writeAtomic(NODE_STATE, `${JSON.stringify(state)}\n`, 0o644);
}

/**
 * Deletes the node's own Node object, with the admin kubeconfig where the node has one, else its
 * kubelet's (NodeRestriction lets a kubelet delete its own Node). On k3s and rke2 that also removes
 * the node's etcd member (the member controller of the remaining servers). True when deleted (or
 * already gone); otherwise why not. Best effort: a cluster already gone must not keep the host from
 * being reset.
 */
export async function deleteOwnNode(device: Device, state: NodeState): Promise<true | string> {
  const driver = driverFor(state.distribution);
  // Control-plane nodes have the admin kubeconfig; elsewhere the kubelet's (the worker's node kubeconfig).
  const admin = (await device.files.stat(driver.adminKubeconfig)) !== undefined;
  try {
    await device.kubernetes(admin ? driver.adminKubeconfig : driver.nodeKubeconfig({ role: 'worker' })).deleteNode(state.nodeName);
    return true;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Takes the node out of its cluster: stops the service, runs the distribution's reset command
 * (a missing command is skipped: nothing of it is running), deletes the cluster's files and the
 * record. The OS image's binaries and air-gap images stay. Throws when the reset command fails.
 */
export async function resetNode(device: Device, state: NodeState, signal?: AbortSignal): Promise<void> {
  const driver = driverFor(state.distribution);
  const reset = driver.reset();
  await device.services?.stop(state.service);
  if (reset.command && device.exec) {
    try {
      await device.exec(reset.command.command, reset.command.args, { timeoutMs: 5 * 60_000, signal });
    } catch (err) {
      const missing = err instanceof ExecError && (err.exitCode === 127 || /ENOENT|not found/i.test(err.stderr));
      if (!missing) throw err;
    }
  }
  const keep = new Set(reset.keep ?? []);
  for (const path of [...reset.paths, KUBERNETES_RECORD]) await removeKeeping(device, path, keep);
  await device.files.remove(NODE_STATE);
}

/** rm -rf `path` (a device path), except entries listed in `keep` (and the directories leading to them). */
async function removeKeeping(device: Device, path: string, keep: Set<string>): Promise<void> {
  const inside = [...keep].filter((k) => k.startsWith(`${path}/`));
  if (keep.has(path)) return;
  if (inside.length === 0) {
    await device.files.remove(path, { recursive: true });
    return;
  }
  for (const entry of (await device.files.list(path)) ?? []) await removeKeeping(device, `${path}/${entry}`, keep);
}
