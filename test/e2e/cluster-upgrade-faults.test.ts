import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli } from '../support/cli-process.js';
import { waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';

/**
 * Cluster upgrade fault injection: while a 3-node cluster (1 control plane, 2 workers) rolls a new OS
 * image and Kubernetes version, every agent is killed (stopped and restarted) the first time it
 * reaches each step of the rolling upgrade (download, staged, cordon, drain, reboot, verify,
 * commit), and the real `edgeplane server` process is SIGKILLed after the first node finished.
 * The cluster must end converged, no node upgraded twice, no slot booted that was not verified.
 */
describe('cluster upgrade with agents and the server killed', () => {
  let registry: TestRegistry;
  let server: CliProcess;
  let fleet: Fleet | undefined;
  let dir: string;
  let url: string;
  let admin: string;
  const digests: Record<string, string> = {};
  const args = () => ['server', '--host', '127.0.0.1', '--port', new URL(url).port, '--data-dir', join(dir, 'server'), '--log-level', 'warn'];
  const api = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const events = async (kind: string, name: string) =>
    (await api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=${kind},involvedObject.name=${name}&limit=500`)).body.items.map((e: any) => ({
      ...e.spec,
      at: e.status.firstTimestamp,
      count: e.status.count,
    }));
  const count = async (kind: string, name: string, reason: string) =>
    (await events(kind, name)).filter((e: any) => e.reason === reason).reduce((n: number, e: any) => n + e.count, 0);
  const profile = (version: string, k8s: string) => ({
    metadata: { name: 'p' },
    spec: { layers: { os: { image: `${registry.host}/edge/os:${version}` }, kubernetes: { distribution: 'k3s', version: k8s } } },
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-upgrade-kill-'));
    registry = await startRegistry();
    for (const version of ['1.0.0', '2.0.0']) {
      digests[version] = await pushOsImage(registry, join(dir, 'layout'), version);
    }
    url = `http://127.0.0.1:${await freePort()}`;
    server = runCli(args());
    // Not a terminal: the banner names the token file instead of printing the token.
    admin = readFileSync((await server.waitForOutput(/Its API token is in (\S+) \(mode 0600/))[1], 'utf8').trim();
  });
  afterAll(async () => {
    await fleet?.stop();
    await server?.stop('SIGKILL');
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('ends converged, with one window and one reboot per node', async () => {
    const token = (await api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: url,
      token,
      sites: 3,
      dataDir: join(dir, 'sim'),
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 20, backoffCapMs: 300 },
    });
    const hosts: string[] = await waitFor(async () => {
      const items = (await api('GET', '/api/v1/edgehosts')).body.items;
      return items.filter((h: any) => h.status.connectivity === 'online').length === 3 && items.map((h: any) => h.metadata.name).sort();
    }, 20_000);
    expect((await api('POST', '/api/v1/clusterprofiles', profile('1.0.0', 'v1.30.4+k3s1'))).status).toBe(201);
    const nodes = hosts.map((h, i) => ({ host: h, role: i === 0 ? 'control-plane' : 'worker' }));
    expect((await api('POST', '/api/v1/clusters', { metadata: { name: 'shop' }, spec: { profile: { name: 'p', revision: 1 }, nodes } })).status).toBe(201);
    await waitFor(async () => (await api('GET', '/api/v1/clusters/shop')).body.status?.profileRevision === 1, 60_000);
    const rebootsBefore = await Promise.all(hosts.map((h) => count('EdgeHost', h, 'Rebooting')));

    // Kill each agent the first time it reports each step.
    const seen = new Set<string>();
    let kills = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const h of hosts) {
          // The server is down for a moment on purpose: skip that round.
          const m = (await api('GET', `/api/v1/edgehosts/${h}`).catch(() => undefined))?.body.status?.agent?.managers ?? {};
          for (const step of [`os:${m.os?.phase}`, `maintenance:${m.maintenance?.phase}`]) {
            if (step.endsWith('undefined') || (step === 'os:Committed' && !seen.has(`${h}:maintenance:Drained`)) || seen.has(`${h}:${step}`)) continue;
            seen.add(`${h}:${step}`);
            const agent = fleet!.agents.find((a) => a.hostName === h);
            if (agent) {
              kills++;
              await agent.restart();
            }
          }
        }
        await new Promise((r) => setTimeout(r, 30));
      }
    })();

    expect((await api('PUT', '/api/v1/clusterprofiles/p', profile('2.0.0', 'v1.31.1+k3s1'))).status).toBe(200);
    expect((await api('PATCH', '/api/v1/clusters/shop', { spec: { profile: { name: 'p', revision: 2 } } }, 'application/merge-patch+json')).status).toBe(200);
    // The server dies right after the first node finished its window.
    await waitFor(async () => (await count('Cluster', 'shop', 'NodeUpgraded')) >= 1, 60_000, 20);
    await server.stop('SIGKILL');
    server = runCli(args());
    await server.waitForOutput(/Edgeplane server is running/);

    const done = await waitFor(async () => {
      const c = (await api('GET', '/api/v1/clusters/shop')).body;
      return c.status?.phase === 'Running' && c.status.profileRevision === 2 && c.status.observedGeneration === c.metadata.generation && c;
    }, 90_000);
    watching = false;
    await watcher;
    if (process.env.DEBUG_UPGRADE) console.log(kills, [...seen].sort().join(' '));
    expect(kills).toBeGreaterThanOrEqual(6);
    for (const n of done.status.nodes) expect(n).toMatchObject({ ready: true, osImageDigest: digests['2.0.0'], kubernetesVersion: 'v1.31.1+k3s1' });
    for (const h of hosts) {
      expect((await events('Cluster', 'shop')).filter((e: any) => e.reason === 'NodeUpgradeStarted' && e.message.startsWith(`${h} `))).toHaveLength(1);
      expect(await count('EdgeHost', h, 'FellBack')).toBe(0);
    }
    expect(await Promise.all(hosts.map((h) => count('EdgeHost', h, 'Rebooting')))).toEqual(rebootsBefore.map((n) => n + 1));
    expect(await count('Cluster', 'shop', 'UpgradeStarted')).toBe(1);
    // maxUnavailable 1 (the default): the control plane first, then each worker's window closes before the next opens.
    const windows = (await events('Cluster', 'shop'))
      .filter((e: any) => e.reason === 'NodeUpgradeStarted' || e.reason === 'NodeUpgraded')
      // Same millisecond: a window's end was written before the next start (the events list is ordered by name).
      .sort((a: any, b: any) => String(a.at).localeCompare(String(b.at)) || (a.reason === 'NodeUpgraded' ? -1 : b.reason === 'NodeUpgraded' ? 1 : 0))
      .map((e: any) => `${e.reason} ${e.message.split(' ')[0]}`);
    expect(windows).toHaveLength(6);
    expect(windows[0]).toBe(`NodeUpgradeStarted ${hosts[0]}`);
    for (let i = 0; i < 6; i += 2) expect(windows[i + 1]).toBe(windows[i].replace('NodeUpgradeStarted', 'NodeUpgraded'));
  }, 180_000);
});
