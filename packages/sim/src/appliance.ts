/**
 * SIMULATION of a Virtualized Edge appliance's guests. The appliance itself is a simulated device
 * whose agent drives a REAL libvirt (the test driver, loaded from the node file below, through one
 * virsh session):
 * its virt manager defines and starts real (test-driver) domains. No guest boots there, so for each
 * running domain this class starts what the guest would run: an agent with a simulated device whose
 * DMI product_uuid is the domain UUID, configured from the domain's NoCloud seed ISO read with
 * xorriso, exactly as cloud-init hands the seed to the agent in a real VM.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Agent, type AgentTiming, loadAgentConfigFromSeed, readDomainXml, SIM_DEVICE_UID_FILE, SimDevice } from '@edgeplane/agent';
import type { Logger } from 'pino';
import { simAgentLogger } from './agent-log.js';

/** The node file of a simulated appliance's libvirt test driver, in the appliance's data dir. */
export const SIM_LIBVIRT_NODE_FILE = 'libvirt-test-node.xml';

/**
 * What a simulated appliance's libvirt holds when it starts: a host with 16 CPUs and 32 GiB of memory,
 * no domains, the network `default` and the storage pool `default` (the names a stock libvirt install
 * has), plus the network `lan` and the pool `nvme` the example in docs/virtualized-edge.md spreads its
 * VMs over. libvirt's built-in test:///default would give 3 GiB of memory with an 8 GiB domain `test`
 * already defined, so not even a small cluster would fit without overcommit. The test driver gives
 * every pool 100 GiB whatever the file says.
 */
export const SIM_LIBVIRT_NODE_XML = `<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>2</threads><active>16</active></cpu>
  <memory>${32 * 1024 * 1024}</memory>
  <network>
    <name>default</name>
    <bridge name='virbr0'/>
    <forward/>
    <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>
  </network>
  <network>
    <name>lan</name>
    <bridge name='br-lan'/>
    <forward mode='bridge'/>
  </network>
  <pool type='dir'>
    <name>default</name>
    <target><path>/var/lib/libvirt/images</path></target>
  </pool>
  <pool type='dir'>
    <name>nvme</name>
    <target><path>/srv/nvme/libvirt</path></target>
  </pool>
</node>
`;

/** Writes the appliance's libvirt node file into `dir` and returns its connection URI (test:///<file>). */
export async function simLibvirt(dir: string): Promise<string> {
  const file = resolve(dir, SIM_LIBVIRT_NODE_FILE);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, SIM_LIBVIRT_NODE_XML);
  return `test://${file}`;
}

interface Guest {
  agent: Agent;
  state: 'running' | 'stopped';
}

export class SimAppliance {
  private readonly guests = new Map<string, Guest>();
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private stopped = false;

  constructor(
    readonly agent: Agent,
    readonly device: SimDevice,
    /** The appliance's libvirt (its own test-driver node file; see simLibvirt). */
    readonly libvirtUri: string,
    private readonly options: { dataDir: string; logger: Logger; timing?: Partial<AgentTiming>; pollMs?: number },
  ) {}

  /** Agents of the guests currently running. */
  get vmAgents(): Agent[] {
    return [...this.guests.values()].filter((g) => g.state === 'running').map((g) => g.agent);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.polling ??= this.poll()
        .catch((err) => this.options.logger.warn({ err: (err as Error).message }, 'appliance poll failed'))
        .finally(() => {
          this.polling = undefined;
        });
    }, this.options.pollMs ?? 250);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
    await Promise.all([...this.guests.values()].map((g) => g.agent.stop()));
    this.guests.clear();
    await this.device.close();
  }

  /** Follows the domains: starts a guest agent for a running domain, stops it when the domain stops or goes. */
  private async poll(): Promise<void> {
    if (this.stopped) return;
    const lv = this.device.libvirt(this.libvirtUri);
    // Keep the appliance's reported inventory fresh (networks, pools, domain states).
    await this.agent.managerRunner?.reportNow();
    const domains = new Map<string, string>();
    for (const name of await lv.names('list', '--all', '--name')) {
      if (!name.startsWith('ep-')) continue;
      const info = await lv.domainInfo(name);
      if (info) domains.set(name, info.state);
    }
    for (const [name, guest] of this.guests) {
      const state = domains.get(name);
      if (state === 'running') continue;
      // Shut off (a resize) or undefined (deleted): the guest's agent goes down with it.
      if (guest.state === 'running') await guest.agent.stop();
      guest.state = 'stopped';
      if (state === undefined) {
        this.guests.delete(name);
        await rm(this.guestDir(name), { recursive: true, force: true });
      }
    }
    for (const [name, state] of domains) {
      if (state !== 'running' || this.stopped) continue;
      const guest = this.guests.get(name);
      if (guest?.state === 'running') continue;
      this.guests.set(name, { agent: await this.boot(name), state: 'running' });
    }
  }

  private guestDir(domain: string): string {
    return join(this.options.dataDir, 'guests', domain);
  }

  /** What cloud-init and the guest's agent do at boot: read the seed, register, connect. */
  private async boot(domain: string): Promise<Agent> {
    const lv = this.device.libvirt(this.libvirtUri);
    const xml = await lv.dumpxml(domain);
    const seed = readDomainXml(xml).seedIso;
    const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1];
    if (!seed || !uuid) throw new Error(`domain ${domain} has no seed cdrom or uuid`);
    const dir = this.guestDir(domain);
    await mkdir(dir, { recursive: true });
    // The guest's DMI product_uuid is the domain UUID (what the server pre-registered).
    const uidFile = join(dir, SIM_DEVICE_UID_FILE);
    await mkdir(dirname(uidFile), { recursive: true });
    await writeFile(uidFile, `${uuid}\n`);
    const config = await loadAgentConfigFromSeed(seed, { dataDir: dir, deviceRoot: dir });
    const hostname = /<edgeplane:vm [^>]*host=['"]([^'"]+)['"]/.exec(xml)?.[1] ?? domain;
    const agent = new Agent({
      config,
      device: new SimDevice({ root: dir, hostname }),
      logger: simAgentLogger(config, this.options.logger, hostname, { vm: true }),
      timing: this.options.timing,
    });
    await agent.start();
    return agent;
  }
}
