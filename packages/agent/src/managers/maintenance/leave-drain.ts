import { sleep } from '../../backoff.js';
import type { Device } from '../../device/device.js';
import { driverFor } from '../kubernetes/drivers.js';
import type { NodeState } from '../kubernetes/node-reset.js';

/**
 * Before a node leaves its cluster (scale in): cordon and drain it through the cluster API so its
 * pods move to the remaining nodes first. Best effort and bounded: a cluster that is already gone
 * or a budget that cannot be met does not keep the host from being reset.
 */
export async function drainBeforeLeave(device: Device, state: NodeState, options: { timeoutMs: number; signal?: AbortSignal }): Promise<string> {
  const driver = driverFor(state.distribution);
  const role = /agent$/.test(state.service) ? 'worker' : 'control-plane';
  const admin = (await device.files.stat(driver.adminKubeconfig)) !== undefined;
  const client = device.kubernetes(admin ? driver.adminKubeconfig : driver.nodeKubeconfig({ role }));
  const deadline = Date.now() + options.timeoutMs;
  try {
    await client.cordon(state.nodeName, true);
    let evicted = 0;
    let stalled = 0;
    for (;;) {
      const round = await client.evictPods(state.nodeName);
      evicted += round.evicted;
      if (round.remaining === 0) return `drained (${evicted} pod(s) evicted)`;
      if (Date.now() >= deadline) return `drain timed out with ${round.remaining} pod(s) left`;
      // The last node of a deleted cluster (or a budget nothing can satisfy): no point waiting long.
      stalled = round.evicted === 0 ? stalled + 1 : 0;
      if (stalled >= 5) return `drain gave up with ${round.remaining} pod(s) left: their disruption budget cannot be met`;
      if (!(await sleep(device.kind === 'simulated' ? 50 : 2_000, options.signal ?? new AbortController().signal))) return 'aborted';
    }
  } catch (err) {
    return `not drained: ${(err as Error).message}`;
  }
}
