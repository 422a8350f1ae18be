import type { Inventory } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { Channel } from './channel.js';
import type { Device } from './device/device.js';
import { reportedInventory } from './device/os-mode.js';

/**
 * What the server knows of this device's inventory on the current connection: the hello carries it,
 * and while the connection lasts it is re-read every `intervalMs` and sent again when it changed.
 * The server chooses a cluster's endpoint from the reported addresses, and an agent can connect
 * while its DHCP lease is still being applied or before a second interface got its address.
 */
export class InventoryReporter {
  /** The inventory last sent on this connection (JSON), to send it again only when it changed. */
  private sent: string | undefined;

  constructor(
    private readonly device: Device,
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  /** The inventory for a connection's hello (undefined when unreadable), remembered as sent. */
  async forHello(): Promise<Inventory | undefined> {
    const inventory = await reportedInventory(this.device).catch((err) => {
      this.logger.warn({ err: (err as Error).message }, 'cannot read inventory');
      return undefined;
    });
    this.sent = inventory ? JSON.stringify(inventory) : undefined;
    return inventory;
  }

  /** Until `channel` closes, calls `send` with the inventory whenever it differs from the one last sent. */
  watch(channel: Channel, send: (inventory: Inventory) => void): void {
    let open = true;
    const timer = setInterval(async () => {
      const inventory = await reportedInventory(this.device).catch(() => undefined);
      const json = inventory ? JSON.stringify(inventory) : undefined;
      if (!inventory || !open || json === this.sent) return;
      this.sent = json;
      this.logger.info('inventory changed; reporting it');
      send(inventory);
    }, this.intervalMs);
    timer.unref();
    void channel.closed.finally(() => {
      open = false;
      clearInterval(timer);
    });
  }
}
