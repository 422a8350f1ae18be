import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLOSE_CODES } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Agent } from './agent.js';
import { AgentConfig } from './config.js';
import { SimDevice } from './device/sim/sim-device.js';
import { TestServer, waitFor } from './testing/test-server.js';

const logger = pino({ level: 'silent' });
const timing = { backoffBaseMs: 20, backoffCapMs: 100, slowRetryMs: 50, stableAfterMs: 1000, closeTimeoutMs: 200 };

describe('Agent', () => {
  let server: TestServer;
  let dataDir: string;
  const agents: Agent[] = [];

  const newAgent = (overrides: Partial<AgentConfig> = {}) => {
    const config = AgentConfig.parse({ server: server.url, token: 'tok', site: 'site-a', labels: { rack: 'r1' }, dataDir, ...overrides });
    // managers: false: these tests are about the channel; the specs they send name images that do not exist.
    const agent = new Agent({ config, device: new SimDevice({ root: dataDir, hostname: 'sim-1' }), logger, timing, version: '9.9.9', managers: false });
    agents.push(agent);
    return agent;
  };
  const connected = (agent: Agent) => waitFor(() => agent.connected, 5000, 'agent connected');

  beforeEach(async () => {
    server = await TestServer.start({ heartbeatIntervalSeconds: 30 });
    dataDir = await mkdtemp(join(tmpdir(), 'agent-'));
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('registers once; a second agent on the same data dir reuses the identity', async () => {
    const a = newAgent();
    const registered = new Promise((resolve) => a.once('registered', resolve));
    await a.start();
    await registered;
    await connected(a);
    expect(server.registrations).toHaveLength(1);
    const req = server.registrations[0];
    expect(req).toMatchObject({ token: 'tok', site: 'site-a', labels: { rack: 'r1' }, agentVersion: '9.9.9', inventory: { simulated: true } });
    expect(req.deviceUid).toBe(await new SimDevice({ root: dataDir }).deviceUid());
    const hostName = a.hostName;
    expect(hostName).toBeTruthy();
    expect(a.state).toBe('ready');
    await a.stop();
    expect(a.connected).toBe(false);

    const b = newAgent();
    await b.start();
    await connected(b);
    expect(server.registrations).toHaveLength(1);
    expect(b.hostName).toBe(hostName);
    expect(server.connections.map((c) => c.hostName)).toEqual([hostName, hostName]);
  });

  it('sends hello first, then heartbeats at the welcome interval; ignores invalid messages', async () => {
    server.heartbeatIntervalSeconds = 0.1;
    const a = newAgent();
    await a.start();
    await connected(a);
    const conn = server.connections[0];
    conn.send({ type: 'bogus' });
    conn.send({ type: 'welcome' });
    await waitFor(() => conn.messages.filter((m) => m.msg.type === 'heartbeat').length >= 4, 5000, '4 heartbeats');
    expect(conn.messages[0].msg).toMatchObject({ type: 'hello', protocolVersion: 1, agentVersion: '9.9.9', inventory: { hostname: 'sim-1' } });
    const beats = conn.messages.filter((m) => m.msg.type === 'heartbeat').map((m) => m.at);
    const gaps = beats.slice(1).map((t, i) => t - beats[i]);
    const mean = gaps.reduce((s, g) => s + g, 0) / gaps.length;
    expect(mean).toBeGreaterThan(60);
    expect(mean).toBeLessThan(250);
    expect(a.connected).toBe(true);
  });

  it('stays stopped when stop() lands while a restart (a simulated reboot) is halting', async () => {
    const a = newAgent();
    await a.start();
    await connected(a);
    const restarted = a.restart();
    await a.stop();
    await restarted;
    const before = server.connections.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(a.connected).toBe(false);
    expect(server.connections.length).toBe(before);
  });

  it('reports its inventory again when it changed after the hello (an address DHCP gave later), and only then', async () => {
    const config = AgentConfig.parse({ server: server.url, token: 'tok', dataDir });
    const device = new SimDevice({ root: dataDir, hostname: 'sim-1' });
    const real = device.inventory.bind(device);
    let addresses = ['fe80::5054:ff:fe12:3456/64'];
    device.inventory = async () => ({ ...(await real()), nics: [{ name: 'eth0', mac: '52:54:00:12:34:56', addresses }] });
    const a = new Agent({ config, device, logger, timing: { ...timing, inventoryCheckMs: 30 }, version: '9.9.9', managers: false });
    agents.push(a);
    await a.start();
    await connected(a);
    const host = a.hostName as string;
    const hello = server.connections[0].messages[0].msg as { inventory?: { nics: unknown } };
    expect(hello.inventory?.nics).toEqual([{ name: 'eth0', mac: '52:54:00:12:34:56', addresses: ['fe80::5054:ff:fe12:3456/64'] }]);
    const withInventory = () => server.received(host, 'status').filter((m) => 'inventory' in m);
    await new Promise((r) => setTimeout(r, 300));
    expect(withInventory()).toEqual([]); // unchanged: nothing sent again
    addresses = ['192.168.122.31/24', 'fe80::5054:ff:fe12:3456/64'];
    await waitFor(() => withInventory().length === 1, 5000, 'a status with the new inventory');
    await new Promise((r) => setTimeout(r, 300));
    expect(withInventory()).toHaveLength(1);
    expect(withInventory()[0]).toMatchObject({
      inventory: { hostname: 'sim-1', nics: [{ name: 'eth0', addresses: ['192.168.122.31/24', 'fe80::5054:ff:fe12:3456/64'] }] },
    });
  });

  it('answers a ping with a heartbeat', async () => {
    const a = newAgent();
    await a.start();
    await connected(a);
    server.connections[0].send({ type: 'ping', ts: Date.now() });
    await waitFor(() => server.received(a.hostName as string, 'heartbeat').length === 1, 2000, 'heartbeat');
  });

  it('persists the spec, reports observedGeneration, and remembers it after a restart', async () => {
    server.spec = {
      generation: 3,
      spec: { os: { image: 'edgeplane-os:1.2', digest: 'sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' } },
    };
    const a = newAgent();
    const specs: number[] = [];
    a.on('spec', (s) => specs.push(s.generation));
    await a.start();
    const host = await waitFor(() => a.hostName);
    await waitFor(() => server.received(host, 'status').length === 1, 5000, 'status');
    expect(server.received(host, 'status')[0]).toMatchObject({ type: 'status', observedGeneration: 3 });
    expect(specs).toEqual([3]);
    expect(a.observedGeneration).toBe(3);
    const stored = JSON.parse(await readFile(join(dataDir, 'spec.json'), 'utf8'));
    expect(stored).toMatchObject({
      generation: 3,
      spec: { os: { image: 'edgeplane-os:1.2', digest: 'sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' } },
    });
    await a.stop();

    server.spec = undefined;
    const b = newAgent();
    await b.start();
    await connected(b);
    expect(server.connections[1].messages[0].msg).toMatchObject({ type: 'hello', observedGeneration: 3 });
  });

  it('reconnects after the server closes the connection, with a fresh connect token', async () => {
    const a = newAgent();
    const disconnects: number[] = [];
    a.on('disconnected', (o) => disconnects.push(o.code));
    await a.start();
    await connected(a);
    server.connections[0].ws.close(1012, 'restart');
    await waitFor(() => server.openConnections.length === 1 && server.connections.length === 2 && a.connected, 5000, 'reconnect');
    expect(disconnects).toEqual([1012]);
    expect(server.seenJti.size).toBe(2);
    expect(server.connections[1].messages[0].msg.type).toBe('hello');
  });

  it('reconnects at once, without registering, when a draining server hands it off (4307), whatever its backoff', async () => {
    // Jitter at 99% of every ceiling: a grown backoff waits ~its cap, a hand-off ~its base.
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.99);
    try {
      const config = AgentConfig.parse({ server: server.url, token: 'tok', site: 'site-a', dataDir });
      const a = new Agent({
        config,
        device: new SimDevice({ root: dataDir, hostname: 'sim-1' }),
        logger,
        timing: { ...timing, backoffCapMs: 3000, stableAfterMs: 60_000 },
        managers: false,
      });
      agents.push(a);
      await a.start();
      await connected(a);
      // Refused connects grow the backoff to its cap (3 s).
      server.refuseConnect = { status: 503, code: 'NotReady' };
      server.connections[0].ws.close(1001);
      await waitFor(() => !a.connected, 2000, 'disconnect');
      await new Promise((r) => setTimeout(r, 2500));
      server.refuseConnect = undefined;
      await waitFor(() => a.connected, 10_000, 'connected again');
      const before = server.connections.length;
      const handedOffAt = Date.now();
      server.connections[before - 1].ws.close(CLOSE_CODES.reconnectElsewhere, 'draining');
      await waitFor(() => server.connections.length === before + 1 && a.connected, 5000, 'reconnect after hand-off');
      expect(Date.now() - handedOffAt).toBeLessThan(1000);
      expect(server.registrations).toHaveLength(1);
    } finally {
      random.mockRestore();
    }
  });

  it('keeps retrying when the server refuses the connection, and connects once allowed', async () => {
    const a = newAgent();
    await a.start();
    await connected(a);
    server.refuseConnect = { status: 401, code: 'ConnectTokenInvalid' };
    server.connections[0].ws.close(1001);
    await waitFor(() => !a.connected, 2000, 'disconnect');
    await new Promise((r) => setTimeout(r, 200));
    expect(a.connected).toBe(false);
    server.refuseConnect = undefined;
    await connected(a);
  });

  it('queues events while disconnected, persists them, and delivers them after reconnecting', async () => {
    const a = newAgent();
    await a.start();
    await connected(a);
    const host = a.hostName as string;
    const live = a.emitEvent('Normal', 'Started', 'agent started');
    await waitFor(() => server.received(host, 'event').length === 1, 2000, 'live event');

    server.refuseConnect = { status: 503, code: 'NotReady' };
    server.connections[0].ws.close(1001);
    await waitFor(() => !a.connected, 2000, 'disconnect');
    const queued = [a.emitEvent('Warning', 'DiskFull', 'disk is full'), a.emitEvent('Normal', 'Recovered', 'ok')];
    // Survives a restart of the agent while offline.
    await a.stop();
    const onDisk = JSON.parse(await readFile(join(dataDir, 'events.json'), 'utf8')) as { id: string }[];
    expect(onDisk.map((e) => e.id)).toEqual(queued);

    server.refuseConnect = undefined;
    const b = newAgent();
    await b.start();
    await waitFor(() => server.received(host, 'event').length === 3, 5000, 'queued events');
    expect(server.received(host, 'event').map((e) => (e as { id: string }).id)).toEqual([live, ...queued]);
    await b.stop();
    expect(JSON.parse(await readFile(join(dataDir, 'events.json'), 'utf8'))).toEqual([]);
  });

  it('retries registration on 429, 5xx and bad tokens', async () => {
    server.registerResponses.push(
      { status: 429, code: 'RateLimited', headers: { 'retry-after': '0' } },
      { status: 503, code: 'NotReady' },
      { status: 401, code: 'RegistrationTokenInvalid' },
    );
    const a = newAgent();
    await a.start();
    await connected(a);
    expect(server.registerResponses).toHaveLength(0);
    expect(server.registrations).toHaveLength(1);
  });

  it('starts and stops quickly when the server is unreachable', async () => {
    const url = server.url;
    await server.close();
    server = await TestServer.start();
    const a = newAgent({ server: url });
    const t0 = Date.now();
    await a.start();
    await new Promise((r) => setTimeout(r, 100));
    await a.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(a.connected).toBe(false);
  });
});
