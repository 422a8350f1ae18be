import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Distribution } from '@edgeplane/protocol';
import { readJsonFile, writeFileAtomic } from '../../atomic-file.js';
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
  return ((await readJsonFile(join(device.root, NODE_STATE)).catch(() => undefined)) as NodeState | undefined) ?? undefined;
}

export async function writeNodeState(device: Device, state: NodeState): Promise<void> {
  await writeFileAtomic(join(device.root, NODE_STATE), `${JSON.stringify(state)}\n`, 0o644);
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
  const keep = new Set((reset.keep ?? []).map((p) => join(device.root, p)));
  for (const path of [...reset.paths, KUBERNETES_RECORD]) await removeKeeping(join(device.root, path), keep);
  await rm(join(device.root, NODE_STATE), { force: true });
}

/** rm -rf `path`, except entries listed in `keep` (and the directories leading to them). */
async function removeKeeping(path: string, keep: Set<string>): Promise<void> {
  const inside = [...keep].filter((k) => k.startsWith(`${path}/`));
  if (keep.has(path)) return;
  if (inside.length === 0) {
    await rm(path, { recursive: true, force: true });
    return;
  }
  const entries = await readdir(path).catch(() => [] as string[]);
  for (const entry of entries) await removeKeeping(join(path, entry), keep);
}
