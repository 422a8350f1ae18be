import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { Agent, AgentConfig, type AgentTiming, SimDevice, simKubernetes } from '@edgeplane/agent';
import { type Logger, pino } from 'pino';
import { simAgentLogger } from './agent-log.js';
import { SimAppliance, simLibvirt } from './appliance.js';

export const SIMULATED_LABEL = 'edgeplane.io/simulated';
/** Label of simulated appliances, so `-l edgeplane.io/sim-appliance` finds them and `-l '!edgeplane.io/sim-appliance'` leaves them out. */
export const SIM_APPLIANCE_LABEL = 'edgeplane.io/sim-appliance';

export interface FleetOptions {
  server: string;
  /** Registration token every simulated device registers with. */
  token: string;
  sites: number;
  nodesPerSite?: number;
  /** Root of all simulated devices: `<dataDir>/site-<s>/node-<n>/` each. */
  dataDir: string;
  logger?: Logger;
  /** Extra labels for every host (the simulated label is always added). */
  labels?: Record<string, string>;
  /** Agents starting at once; an agent's slot frees once it connected or `settleTimeoutMs` passed. */
  concurrency?: number;
  settleTimeoutMs?: number;
  timing?: Partial<AgentTiming>;
  /**
   * Simulated Virtualized Edge appliances (`<dataDir>/appliance-<n>/`), one per site round-robin: each
   * drives libvirt's test driver and runs an agent per running domain (see appliance.ts).
   */
  appliances?: number;
  /**
   * Hosts (per site, the last ones) that keep their own OS: no A/B slots, inventory osMode
   * `unmanaged` (agent mode: they take profiles without an os layer). Default 0.
   */
  unmanagedPerSite?: number;
}

export interface Fleet {
  readonly agents: Agent[];
  /** The simulated appliances (their agents are in `agents` too). */
  readonly appliances: SimAppliance[];
  /** Resolves once every agent has been started (not necessarily connected). */
  readonly started: Promise<void>;
  /** Resolves when every agent is connected; rejects after `timeoutMs` saying how many are. */
  waitUntilConnected(timeoutMs?: number): Promise<void>;
  /** Stops starting agents and stops every started one (closing its socket). */
  stop(): Promise<void>;
}

/** Site index to name: zero-padded to at least 3 digits so names sort (site-001 ... site-120). */
export function siteName(index: number, sites: number): string {
  return `site-${String(index).padStart(Math.max(3, String(sites).length), '0')}`;
}

/**
 * Runs sites x nodesPerSite agents with simulated devices in this process. Each device keeps its
 * files (uid, identity, spec, events) in its own directory, so a fleet restarted on the same data
 * dir comes back as the same hosts. Agents start through a bounded pool so a large fleet does not
 * hit the server with every registration at once.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const { sites, nodesPerSite = 1, concurrency = 50, settleTimeoutMs = 5000 } = options;
  if (!Number.isInteger(sites) || sites < 1) throw new Error('sites must be a positive integer');
  if (!Number.isInteger(nodesPerSite) || nodesPerSite < 1) throw new Error('nodesPerSite must be a positive integer');
  const logger = options.logger ?? pino({ name: 'edgeplane-sim' });
  const labels = { ...options.labels, [SIMULATED_LABEL]: 'true' };
  // The simulated Kubernetes clusters of these devices outlive a restart of the simulator.
  simKubernetes.configure({ stateDir: join(options.dataDir, 'sim-clusters') });

  const agents: Agent[] = [];
  for (let s = 1; s <= sites; s++) {
    const site = siteName(s, sites);
    for (let n = 1; n <= nodesPerSite; n++) {
      const dir = join(options.dataDir, site, `node-${n}`);
      const hostname = `sim-${site}-node-${n}`;
      const config = AgentConfig.parse({ server: options.server, token: options.token, site, labels, dataDir: dir, deviceRoot: dir });
      agents.push(
        new Agent({
          config,
          device: new SimDevice({ root: dir, hostname, ...(n > nodesPerSite - (options.unmanagedPerSite ?? 0) ? { os: 'unmanaged' as const } : {}) }),
          logger: simAgentLogger(config, logger, hostname),
          timing: options.timing,
        }),
      );
    }
  }

  const appliances: SimAppliance[] = [];
  for (let a = 1; a <= (options.appliances ?? 0); a++) {
    const dir = join(options.dataDir, `appliance-${a}`);
    const site = siteName(((a - 1) % sites) + 1, sites);
    const hostname = `sim-appliance-${a}`;
    const libvirtUri = await simLibvirt(dir);
    const config = AgentConfig.parse({
      server: options.server,
      token: options.token,
      site,
      labels: { ...labels, [SIM_APPLIANCE_LABEL]: 'true' },
      dataDir: dir,
      deviceRoot: dir,
      virt: { libvirtUri },
    });
    const device = new SimDevice({ root: dir, hostname });
    const log = logger.child({ sim: hostname });
    const agent = new Agent({ config, device, logger: simAgentLogger(config, logger, hostname), timing: options.timing });
    agents.push(agent);
    appliances.push(new SimAppliance(agent, device, libvirtUri, { dataDir: dir, logger: log, timing: options.timing }));
  }

  const stopping = new AbortController();
  // Every pool slot waits on this signal at once.
  setMaxListeners(concurrency + 10, stopping.signal);
  const launched: Agent[] = [];
  let next = 0;
  const worker = async () => {
    while (!stopping.signal.aborted && next < agents.length) {
      const agent = agents[next++];
      launched.push(agent);
      try {
        await agent.start();
      } catch (err) {
        logger.error({ err, dataDir: agent.config.dataDir }, 'simulated agent failed to start');
        continue;
      }
      await settled(agent, settleTimeoutMs, stopping.signal);
    }
  };
  const started = Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, agents.length)) }, worker)).then(() => {
    if (!stopping.signal.aborted) for (const a of appliances) a.start();
  });

  return {
    agents,
    appliances,
    started,
    async waitUntilConnected(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!agents.every((a) => a.connected)) {
        if (Date.now() > deadline)
          throw new Error(`only ${agents.filter((a) => a.connected).length} of ${agents.length} simulated agents connected after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      stopping.abort();
      await started;
      await Promise.all(appliances.map((a) => a.stop()));
      await Promise.all(launched.map((a) => a.stop()));
    },
  };
}

/** Resolves when the agent connected, `timeoutMs` passed, or the fleet is stopping. */
function settled(agent: Agent, timeoutMs: number, signal: AbortSignal): Promise<void> {
  if (agent.connected) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      agent.off('connected', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    agent.on('connected', done);
    signal.addEventListener('abort', done);
  });
}
