import { type Fleet, type FleetOptions, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { expect } from 'vitest';
import { waitFor } from './device.js';
import type { TestRegistry } from './registry.js';
import type { TestServer } from './server.js';

// Set-up shared by end-to-end tests: a simulated fleet on the test server, and the profile and cluster they build on it.

export interface SimFleetOptions {
  /** Simulated sites, one node each. */
  sites: number;
  /** Simulated Virtualized Edge appliances (their hosts come on top of the sites' nodes). */
  appliances?: number;
  /** Root of the simulated devices' files. */
  dataDir: string;
  /** Name of the auto-approve registration token the devices register with. */
  tokenName?: string;
  /** The agents' reconnect back-off cap (their base is 20 ms). */
  backoffCapMs?: number;
  /** Each of the two waits (agents connected; the API showing their hosts) gets this long. */
  timeoutMs?: number;
  /** Also wait for every host to be in state `ready`. */
  ready?: boolean;
}

/** The fields of a listed EdgeHost this module reads. */
type ListedHost = { metadata: { name: string }; status: { connectivity: string; state: string } };

export interface SimFleet {
  fleet: Fleet;
  /** What the fleet was started with: start it again with these to restart the simulator on the same devices. */
  options: FleetOptions;
  /** The sites' node hosts, sorted by name (appliances left out). */
  hosts: string[];
  /** The appliances' host names, in the fleet's order. */
  appliances: string[];
}

/**
 * Starts a simulated fleet (real agents, simulated devices, logs silenced) against the test server
 * with a new auto-approve registration token, and returns once every agent is connected and the API
 * lists every host online (and `ready` when asked). A fleet that does not get there is stopped
 * before the error is thrown, so no agent outlives the test.
 */
export async function startSimFleet(t: TestServer, o: SimFleetOptions): Promise<SimFleet> {
  const { sites, appliances = 0, timeoutMs = 20_000 } = o;
  const tokenBody = { metadata: { name: o.tokenName ?? 'lab' }, spec: { autoApprove: true } };
  const token = (await t.api('POST', '/api/v1/registrationtokens', tokenBody)).body.status.token;
  const options: FleetOptions = {
    server: t.url,
    token,
    sites,
    appliances,
    dataDir: o.dataDir,
    logger: pino({ level: 'silent' }),
    timing: { backoffBaseMs: 20, backoffCapMs: o.backoffCapMs ?? 300 },
  };
  const fleet = await startFleet(options);
  try {
    await fleet.waitUntilConnected(timeoutMs);
    const applianceNames = fleet.appliances.map((a) => a.agent.hostName!);
    const online = await waitFor(async () => {
      const items: ListedHost[] = (await t.api('GET', '/api/v1/edgehosts?limit=1000')).body.items;
      const up = items.filter((h) => h.status.connectivity === 'online' && (!o.ready || h.status.state === 'ready'));
      return up.length === sites + appliances && up.map((h) => h.metadata.name);
    }, timeoutMs);
    return { fleet, options, hosts: online.filter((n) => !applianceNames.includes(n)).sort(), appliances: applianceNames };
  } catch (err) {
    await fleet.stop();
    throw err;
  }
}

/** Creates cluster profile `name`: the OS image `edge/os:1.0.0` in the test registry (push it first) and k3s v1.30.4+k3s1. */
export async function createK3sProfile(t: TestServer, registry: TestRegistry, name: string): Promise<void> {
  const r = await t.api('POST', '/api/v1/clusterprofiles', {
    metadata: { name },
    spec: { layers: { os: { image: `${registry.host}/edge/os:1.0.0` }, kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' } } },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}

/** Creates native cluster `name` of revision 1 of `profile` on `nodes` (host, role), with optional variables. */
export async function createNativeCluster(
  t: TestServer,
  name: string,
  profile: string,
  nodes: { host: string; role: string }[],
  variables?: Record<string, string>,
): Promise<void> {
  const r = await t.api('POST', '/api/v1/clusters', {
    metadata: { name },
    spec: { type: 'native', profile: { name: profile, revision: 1 }, nodes, ...(variables ? { variables } : {}) },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}
