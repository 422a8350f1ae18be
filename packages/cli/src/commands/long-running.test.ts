import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runCli, tempConfigEnv } from '../test-support.js';
import { serverBanner } from './server.js';
import { countConnected } from './sim.js';

const server = vi.hoisted(() => ({
  close: vi.fn(async () => {}),
  startServer: vi.fn(),
}));
vi.mock('@edgeplane/server', () => ({ startServer: server.startServer }));

const agent = vi.hoisted(() => ({ instances: [] as { options: Record<string, unknown>; started: boolean; stopped: boolean }[] }));
vi.mock(import('@edgeplane/agent'), async (importOriginal) => {
  const real = await importOriginal();
  // Only the Agent is replaced: config loading and the devices are the real ones.
  class FakeAgent {
    state = { options: {} as Record<string, unknown>, started: false, stopped: false };
    constructor(options: Record<string, unknown>) {
      this.state.options = options;
      agent.instances.push(this.state);
    }
    on() {
      return this;
    }
    off() {
      return this;
    }
    async start() {
      this.state.started = true;
    }
    async stop() {
      this.state.stopped = true;
    }
  }
  return { ...real, Agent: FakeAgent as unknown as typeof real.Agent };
});

const sim = vi.hoisted(() => ({ startFleet: vi.fn(), stop: vi.fn(async () => {}) }));
vi.mock('@edgeplane/sim', () => ({ startFleet: sim.startFleet }));

describe('server', () => {
  it('starts the server with the flags, prints the admin token on first start and closes on a signal', async () => {
    server.startServer.mockResolvedValueOnce({
      url: 'http://127.0.0.1:8080',
      adminToken: 'ept_admin',
      adminTokenFile: '/data/admin-token',
      close: server.close,
    });
    const env = { ...tempConfigEnv(), EDGEPLANE_DATABASE_URL: 'postgres://db/edge' };
    const r = await runCli(['server', '--port', '0', '--data-dir', '/data', '--offline-after', '30', '--log-level', 'warn'], { env, tty: true });
    expect(r.code).toBe(0);
    expect(server.startServer).toHaveBeenCalledWith(
      expect.objectContaining({ port: 0, dataDir: '/data', databaseUrl: 'postgres://db/edge', offlineAfterSeconds: 30, logLevel: 'warn' }),
    );
    expect(r.stdout).toContain('Console: http://127.0.0.1:8080/');
    expect(r.stdout).toContain('API:     http://127.0.0.1:8080/api/v1');
    expect(r.stdout).toContain('  ept_admin\n');
    expect(r.stdout).toContain('saved to /data/admin-token');
    expect(r.stderr).toContain('Received SIGTERM');
    expect(server.close).toHaveBeenCalledTimes(1);
  });

  it("prints a first start's admin token only to a terminal; a service log gets the file it is in", async () => {
    server.startServer.mockResolvedValueOnce({
      url: 'http://127.0.0.1:8080',
      adminToken: 'ept_admin',
      adminTokenFile: '/data/admin-token',
      close: server.close,
    });
    const r = await runCli(['server', '--data-dir', '/data'], { env: tempConfigEnv() });
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('ept_admin');
    expect(r.stdout).toContain('Its API token is in /data/admin-token');
  });

  it('points at the admin token file on later starts', () => {
    const banner = serverBanner({ url: 'http://h:8080', adminTokenFile: '/d/admin-token' });
    expect(banner).toContain('The admin API token is in /d/admin-token');
    expect(banner).not.toContain('An admin user was created');
  });

  it('passes --allowed-registries as a list and refuses one that is not host[:port],...', async () => {
    server.startServer.mockResolvedValueOnce({ url: 'http://127.0.0.1:8080', adminTokenFile: '/data/admin-token', close: server.close });
    const ok = await runCli(['server', '--data-dir', '/data', '--allowed-registries', 'reg.lab:5000, ghcr.io'], { env: tempConfigEnv() });
    expect(ok.code).toBe(0);
    expect(server.startServer).toHaveBeenLastCalledWith(expect.objectContaining({ allowedRegistries: ['reg.lab:5000', 'ghcr.io'] }));
    const calls = server.startServer.mock.calls.length;
    const bad = await runCli(['server', '--allowed-registries', 'http://reg.lab/x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('expected host[:port],...');
    expect(server.startServer.mock.calls.length).toBe(calls);
  });

  it('refuses a bad port', async () => {
    const r = await runCli(['server', '--port', 'http']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--port must be a non-negative integer');
  });
});

describe('agent', () => {
  it('loads the config with flag overrides, gives a simulated device a sandbox root, and stops on a signal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-cmd-'));
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, 'server: http://from-file:8080\ntoken: file-token\nsite: shop-1\n');
    const r = await runCli(['agent', '--config', config, '--server', 'http://flag:8080', '--data-dir', join(dir, 'data'), '--simulated']);
    expect(r.code).toBe(0);
    const [instance] = agent.instances;
    expect(instance.started && instance.stopped).toBe(true);
    expect(instance.options.config).toMatchObject({ server: 'http://flag:8080', token: 'file-token', site: 'shop-1', dataDir: join(dir, 'data') });
    const device = instance.options.device as { kind: string; root: string };
    expect(device).toMatchObject({ kind: 'simulated', root: join(dir, 'data', 'sim-device') });
    expect(r.stderr).toContain('Received SIGTERM; stopping the agent.');
  });

  it('reports an invalid config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-cmd-'));
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, 'server: not-a-url\n');
    const r = await runCli(['agent', '--config', config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: invalid agent config .*agent\.yaml:\n {2}- server: must be an http\(s\) URL/);
  });
});

describe('sim', () => {
  it('starts the fleet, shows progress as agents connect and stops on a signal', async () => {
    let stop!: (signal: string) => void;
    const shutdown = new Promise<string>((resolve) => (stop = resolve));
    const agents = [{ connected: false }, { connected: false }, { connected: false }];
    sim.startFleet.mockResolvedValueOnce({
      agents,
      waitUntilConnected: async () => {
        for (const a of agents) {
          await new Promise((r) => setTimeout(r, 100));
          a.connected = true;
        }
        // Ctrl+C once everything is up.
        setTimeout(() => stop('SIGINT'), 20);
      },
      stop: sim.stop,
    });
    const r = await runCli(['sim', '--server', 'http://s', '--token', 't', '--sites', '3', '--data-dir', '/tmp/fleet'], { waitForShutdown: () => shutdown });
    expect(r.code).toBe(0);
    expect(sim.startFleet).toHaveBeenCalledWith(expect.objectContaining({ server: 'http://s', token: 't', sites: 3, nodesPerSite: 1, dataDir: '/tmp/fleet' }));
    const lines = r.stderr.split('\n');
    expect(lines).toContain('0/3 agents connected');
    expect(lines).toContain('3/3 agents connected');
    expect(r.stderr).toMatch(/All 3 agents connected in \d+s/);
    expect(r.stderr).toContain('Received SIGINT; stopping the fleet.');
    expect(sim.stop).toHaveBeenCalledTimes(1);
  });

  it('counts connected agents', () => {
    expect(countConnected([{ connected: true }, { connected: false }, { connected: true }])).toBe(2);
  });
});
