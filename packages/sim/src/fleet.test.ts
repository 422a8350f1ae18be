import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestServer, waitFor } from '@edgeplane/agent/testing';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Fleet, SIMULATED_LABEL, siteName, startFleet } from './fleet.js';

const logger = pino({ level: 'silent' });

describe('startFleet', () => {
  let server: TestServer;
  let dataDir: string;
  let fleet: Fleet | undefined;

  beforeEach(async () => {
    server = await TestServer.start();
    dataDir = await mkdtemp(join(tmpdir(), 'sim-fleet-'));
  });
  afterEach(async () => {
    await fleet?.stop();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const start = () =>
    startFleet({
      server: server.url,
      token: 'tok',
      sites: 3,
      nodesPerSite: 2,
      dataDir,
      logger,
      labels: { env: 'test' },
      concurrency: 2,
      timing: { backoffBaseMs: 20, backoffCapMs: 100 },
    });

  it('runs sites x nodes distinct devices that come back as the same hosts after a restart', async () => {
    fleet = await start();
    expect(fleet.agents).toHaveLength(6);
    await fleet.waitUntilConnected(10_000);
    const regs = server.registrations;
    expect(regs).toHaveLength(6);
    expect(new Set(regs.map((r) => r.deviceUid)).size).toBe(6);
    expect(new Set(regs.map((r) => r.publicKey.x)).size).toBe(6);
    expect(new Set(regs.map((r) => r.site))).toEqual(new Set(['site-001', 'site-002', 'site-003']));
    expect(regs.map((r) => r.inventory.hostname).sort()).toContain('sim-site-002-node-2');
    for (const r of regs) {
      expect(r.labels).toEqual({ env: 'test', [SIMULATED_LABEL]: 'true' });
      expect(r.inventory.simulated).toBe(true);
    }
    const hostNames = fleet.agents.map((a) => a.hostName).sort();
    expect(server.openConnections).toHaveLength(6);

    await fleet.stop();
    await waitFor(() => server.openConnections.length === 0, 2000, 'all sockets closed');

    fleet = await start();
    await fleet.waitUntilConnected(10_000);
    expect(server.registrations).toHaveLength(6);
    expect(fleet.agents.map((a) => a.hostName).sort()).toEqual(hostNames);
    expect(new Set(fleet.agents.map((a) => a.publicKey?.x))).toEqual(new Set(regs.map((r) => r.publicKey.x)));
    expect(server.openConnections).toHaveLength(6);
  });

  it('names sites so they sort', () => {
    expect(siteName(7, 12)).toBe('site-007');
    expect(siteName(42, 1500)).toBe('site-0042');
  });

  it('times out waiting when the server is unreachable, and stops promptly', async () => {
    const url = server.url;
    await server.close();
    server = await TestServer.start();
    fleet = await startFleet({
      server: url,
      token: 'tok',
      sites: 2,
      dataDir,
      logger,
      settleTimeoutMs: 10_000,
      timing: { backoffBaseMs: 20, backoffCapMs: 100 },
    });
    await expect(fleet.waitUntilConnected(200)).rejects.toThrow(/0 of 2/);
    const t0 = Date.now();
    await fleet.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    fleet = undefined;
  });
});
