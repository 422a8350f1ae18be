import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentStatus, OsStatus } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pushOciLayout, startRegistry, type TestRegistry } from '../../../../../test/support/registry.js';
import { Agent } from '../../agent.js';
import { AgentConfig } from '../../config.js';
import { runTool } from '../../device/run-tool.js';
import { SECURE_BOOT_EFIVAR } from '../../device/secure-boot.js';
import { SimDevice } from '../../device/sim/sim-device.js';
import { writeOsImage } from '../../oci/index.js';
import { startLayoutServer } from '../../oci/testing-layout-server.js';
import { peKernelHead } from '../../oci/testing-pe.js';
import { TestServer, waitFor } from '../../testing/test-server.js';
import { OsManager } from './os.manager.js';

const logger = pino({ level: 'silent' });
const timing = { backoffBaseMs: 20, backoffCapMs: 100, slowRetryMs: 50, stableAfterMs: 1000, closeTimeoutMs: 200 };

let work: string;
let registry: TestRegistry;
let layout: string;
const digests: Record<string, string> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ep-osm-'));
  layout = join(work, 'layout');
  registry = await startRegistry();
  for (const version of ['1.0.0', '2.0.0']) {
    await writeOsImage({ layoutDir: layout, tag: version, name: 'Edgeplane OS', version });
    digests[version] = await pushOciLayout(layout, `${registry.host}/edge/os:${version}`);
  }
});
afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('os manager on SimDevice', () => {
  let server: TestServer;
  let root: string;
  const agents: Agent[] = [];

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await server?.close();
  });

  async function start(spec: Record<string, unknown>, osOptions: { failHealth?: string; secureBoot?: boolean } = {}) {
    server = await TestServer.start({ heartbeatIntervalSeconds: 30 });
    server.spec = { generation: 1, spec };
    root = await mkdtemp(join(work, 'dev-'));
    // The simulated firmware enforces Secure Boot: efivarfs's SecureBoot variable, attributes then 1.
    if (osOptions.secureBoot) await new SimDevice({ root, hostname: 'sim-os' }).files.writeAtomic(SECURE_BOOT_EFIVAR, Buffer.from([6, 0, 0, 0, 1]));
    const device = new SimDevice({ root, hostname: 'sim-os' });
    const healthChecks = osOptions.failHealth ? [async () => osOptions.failHealth] : [];
    const config = AgentConfig.parse({ server: server.url, token: 'tok', dataDir: root });
    const agent = new Agent({
      config,
      device,
      logger,
      timing,
      managers: [new OsManager(device, { dataDir: root, healthChecks, healthCheckRetryDelayMs: 10 })],
    });
    agents.push(agent);
    await agent.start();
    const host = await waitFor(() => agent.hostName);
    return { agent, device, host };
  }
  const osStatuses = (host: string) => server.received(host, 'status').map((m) => (m as { status: AgentStatus }).status.managers?.os as OsStatus);
  const lastOs = (host: string) => osStatuses(host).at(-1);
  const grubenv = async () => (await runTool('grub-editenv', [join(root, 'boot/grub/grubenv'), 'list'])).stdout;
  const events = (host: string) => server.received(host, 'event').map((e) => (e as { reason: string }).reason);

  it('stages image 1 into slot B, reboots into it and commits; image 2 goes to slot A', async () => {
    const image1 = { image: `${registry.host}/edge/os:1.0.0`, digest: digests['1.0.0'], insecure: true };
    const { agent, device, host } = await start({ os: image1 });
    await waitFor(() => lastOs(host)?.phase === 'Committed', 15_000, 'image 1 committed');
    expect(lastOs(host)).toMatchObject({ bootedSlot: 'B', activeSlot: 'B', digest: digests['1.0.0'], slots: { B: { digest: digests['1.0.0'] } } });
    const phases = osStatuses(host).map((s) => s?.phase);
    expect(phases).toEqual(expect.arrayContaining(['Staged', 'Rebooting', 'Committed']));
    expect(phases.indexOf('Staged')).toBeLessThan(phases.indexOf('Committed'));
    expect(await grubenv()).toMatch(/^active_slot=B$/m);
    expect(await grubenv()).toMatch(/^next_slot=$/m);
    expect(await grubenv()).toMatch(/^try_slot=$/m);
    expect(await readFile(join(root, 'slots/B/rootfs/etc/os-release'), 'utf8')).toContain('VERSION_ID=1.0.0');
    expect((await device.inventory()).os.version).toBe('1.0.0');
    expect(events(host)).toEqual(expect.arrayContaining(['ImageStaged', 'Rebooting', 'ImageCommitted']));
    expect(existsSync(join(root, 'os/cache/blobs'))).toBe(false); // the download cache is dropped once staged

    const conn = server.connections.at(-1);
    // Like the real server, the test server re-sends its current spec on every (re)connect.
    server.spec = { generation: 2, spec: { os: { ...image1, image: `${registry.host}/edge/os:2.0.0`, digest: digests['2.0.0'] } } };
    conn?.send({ type: 'spec', ...server.spec });
    await waitFor(() => lastOs(host)?.phase === 'Committed' && lastOs(host)?.digest === digests['2.0.0'], 15_000, 'image 2 committed');
    expect(lastOs(host)).toMatchObject({ bootedSlot: 'A', activeSlot: 'A', slots: { A: { digest: digests['2.0.0'] }, B: { digest: digests['1.0.0'] } } });
    expect(await grubenv()).toMatch(/^active_slot=A$/m);
    expect(agent.observedGeneration).toBe(2);
  });

  it('falls back to the previous slot when the trial boot is unhealthy, and says why', async () => {
    const { host } = await start({ os: { image: `oci:${layout}:1.0.0`, digest: digests['1.0.0'] } }, { failHealth: 'kubelet did not become ready' });
    await waitFor(() => lastOs(host)?.phase === 'FellBack', 15_000, 'fell back');
    const os = lastOs(host);
    expect(os).toMatchObject({ bootedSlot: 'A', activeSlot: 'A', slots: { B: { digest: digests['1.0.0'] } } });
    expect(os?.message).toContain('fell back to slot A');
    expect(os?.message).toContain('kubelet did not become ready');
    expect(os?.error).toMatchObject({ phase: 'health', component: 'os', retryable: false });
    expect(await grubenv()).toMatch(/^active_slot=A$/m);
    expect(await grubenv()).toMatch(/^try_slot=$/m);
    expect(events(host)).toEqual(expect.arrayContaining(['FallingBack', 'FellBack']));
    // It does not loop: the failed digest is not tried again until the spec names another one.
    const reboots = events(host).filter((r) => r === 'Rebooting').length;
    await new Promise((r) => setTimeout(r, 300));
    expect(events(host).filter((r) => r === 'Rebooting').length).toBe(reboots);
  });

  it('falls back when a profile health check fails on the trial boot, naming the check and its output', async () => {
    const healthChecks = [
      { name: 'sim-ok', type: 'command', command: ['edgeplane-sim-health', 'ok'], timeoutSeconds: 5, retries: 1 },
      // SIMULATION: edgeplane-sim-health is the SimDevice stand-in for a real check command.
      { name: 'app-ready', type: 'command', command: ['edgeplane-sim-health', 'fail', 'app answered 503'], timeoutSeconds: 5, retries: 2 },
    ];
    const { host } = await start({ os: { image: `oci:${layout}:1.0.0`, digest: digests['1.0.0'], healthChecks } });
    await waitFor(() => lastOs(host)?.phase === 'FellBack', 15_000, 'fell back');
    const os = lastOs(host);
    expect(os).toMatchObject({ bootedSlot: 'A', activeSlot: 'A', error: { phase: 'health', component: 'os', retryable: false } });
    expect(os?.message).toContain('fell back to slot A');
    expect(os?.message).toContain('health check "app-ready" failed after 2 attempt(s)');
    expect(os?.message).toContain('app answered 503');
    expect(os?.message).not.toContain('sim-ok');
  });

  it('commits when every profile health check passes (http 2xx and a command)', async () => {
    const http = createServer((req, res) => {
      res.writeHead(req.url === '/healthz' ? 200 : 404).end('ok');
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/healthz`;
      const healthChecks = [
        { name: 'kubelet', type: 'http', url, timeoutSeconds: 5, retries: 1 },
        { name: 'sim-ok', type: 'command', command: ['edgeplane-sim-health', 'ok'], timeoutSeconds: 5, retries: 1 },
      ];
      const { host } = await start({ os: { image: `oci:${layout}:1.0.0`, digest: digests['1.0.0'], healthChecks } });
      await waitFor(() => lastOs(host)?.phase === 'Committed', 15_000, 'committed');
      expect(lastOs(host)).toMatchObject({ bootedSlot: 'B', activeSlot: 'B', digest: digests['1.0.0'] });
    } finally {
      http.close();
    }
  });

  it('under Secure Boot a kernel without a signature does not boot: the device falls back and says why; a signed one commits', async () => {
    for (const [tag, signed] of [
      ['3.0.0-unsigned', false],
      ['3.0.0-signed', true],
    ] as const) {
      await writeOsImage({ layoutDir: layout, tag, name: 'Edgeplane OS', version: tag, files: { 'boot/vmlinuz': peKernelHead(signed).toString('latin1') } });
    }
    const unsigned = await digestOf('3.0.0-unsigned');
    const { host } = await start({ os: { image: `oci:${layout}:3.0.0-unsigned`, digest: unsigned } }, { secureBoot: true });
    await waitFor(() => lastOs(host)?.phase === 'FellBack', 15_000, 'fell back');
    expect(lastOs(host)).toMatchObject({ bootedSlot: 'A', activeSlot: 'A', slots: { B: { digest: unsigned } } });
    expect(lastOs(host)?.message).toBe(
      'fell back to slot A: slot B did not boot; the boot loader started slot A: Secure Boot is enforced and the kernel of slot B carries no signature, so the firmware chain refused it',
    );
    expect(await grubenv()).toMatch(/^active_slot=A$/m);

    const signed = await digestOf('3.0.0-signed');
    server.spec = { generation: 2, spec: { os: { image: `oci:${layout}:3.0.0-signed`, digest: signed } } };
    server.connections.at(-1)?.send({ type: 'spec', ...server.spec });
    await waitFor(() => lastOs(host)?.phase === 'Committed' && lastOs(host)?.digest === signed, 15_000, 'signed image committed');
    expect(lastOs(host)).toMatchObject({ bootedSlot: 'B', activeSlot: 'B' });
  });

  it('refuses a tampered image: nothing is staged and nothing boots', async () => {
    const bad = await startLayoutServer({ layoutDir: layout, tamper: await layerOf('1.0.0') });
    try {
      const { host } = await start({ os: { image: `${bad.host}/edge/os:1.0.0`, digest: digests['1.0.0'], insecure: true } });
      await waitFor(() => lastOs(host)?.phase === 'Failed', 10_000, 'failed');
      expect(lastOs(host)?.error).toMatchObject({ phase: 'prepare', component: 'os', retryable: false });
      expect(lastOs(host)?.error?.message).toContain('does not match its digest');
      expect(lastOs(host)).toMatchObject({ bootedSlot: 'A', slots: { B: {} } });
      expect(existsSync(join(root, 'slots/B'))).toBe(false);
      expect(await grubenv().catch(() => '')).not.toMatch(/next_slot=B/);
      expect(events(host)).toContain('ImageRejected');
      expect(events(host)).not.toContain('Rebooting');
      // A spec without an OS image clears the stale failure.
      server.connections.at(-1)?.send({ type: 'spec', generation: 2, spec: {} });
      await waitFor(() => lastOs(host)?.phase === 'Idle', 5000, 'idle');
      expect(lastOs(host)?.error).toBeUndefined();
    } finally {
      await bad.close();
    }
  });
});

async function digestOf(tag: string): Promise<string> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  return index.manifests.find((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'] === tag).digest;
}

async function layerOf(tag: string): Promise<string> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const desc = index.manifests.find((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'] === tag);
  const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', desc.digest.slice(7)), 'utf8'));
  return manifest.layers[0].digest;
}
