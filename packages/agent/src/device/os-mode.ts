import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Inventory, OsMode } from '@edgeplane/protocol';
import type { Device } from './device.js';

/**
 * Who manages the device's OS, as the agent reports it (inventory.osMode): `managed` when the
 * device has Edgeplane's A/B slots, `unmanaged` when it keeps its own OS (agent mode).
 */
export function deviceOsMode(device: Pick<Device, 'boot'>): OsMode {
  return device.boot === 'unmanaged' ? 'unmanaged' : 'managed';
}

/** The device's inventory with its OS mode: what registration, pairing and hello report. */
export async function reportedInventory(device: Pick<Device, 'boot' | 'inventory'>): Promise<Inventory> {
  return { ...(await device.inventory()), osMode: deviceOsMode(device) };
}

/**
 * Whether a real machine has Edgeplane's A/B slots: the GPT partitions labelled root-a and root-b
 * (as udev names them under /dev/disk/by-partlabel, where LinuxSlots writes images). A stock
 * Ubuntu/Debian/RHEL host has neither and runs in agent mode (`unmanaged`): the agent then installs
 * no OS images instead of failing on a partition that is not there.
 */
export async function hasAbPartitions(root: string): Promise<boolean> {
  for (const label of ['root-a', 'root-b']) {
    const st = await stat(join(root, 'dev/disk/by-partlabel', label)).catch(() => undefined);
    if (!st?.isBlockDevice()) return false;
  }
  return true;
}
