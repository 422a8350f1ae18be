import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '@edgeplane/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { startSimFleet } from '../support/sim-fleet.js';

// Agent-side flow across packages (server -> agent -> registry -> slots -> simulated reboot); the store
// plays no part beyond holding the host, so one dialect is enough.
describe('OS image update of a simulated host through the real server', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  const digests: Record<string, string> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-os-e2e-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    for (const version of ['1.0.0', '2.0.0']) {
      digests[version] = await pushOsImage(registry, join(dir, 'layout'), version);
    }
  });
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('stages, reboots into and commits the image the host spec names; then the next one into the other slot', async () => {
    const sim = await startSimFleet(t, { sites: 1, dataDir: join(dir, 'sim'), tokenName: 'os', backoffCapMs: 200, timeoutMs: 10_000 });
    fleet = sim.fleet;
    const name = sim.hosts[0];
    const host = async () => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;

    for (const [version, slot] of [
      ['1.0.0', 'B'],
      ['2.0.0', 'A'],
    ]) {
      const patch = { spec: { os: { image: `${registry.host}/edge/os:${version}`, digest: digests[version] } } };
      const r = await t.api('PATCH', `/api/v1/edgehosts/${name}`, patch, { contentType: 'application/merge-patch+json' });
      expect(r.status).toBe(200);
      const os = await waitFor(async () => {
        const s = (await host()).status.agent?.managers?.os;
        return s?.phase === 'Committed' && s.digest === digests[version] && s;
      }, 20_000);
      expect(os).toMatchObject({ bootedSlot: slot, activeSlot: slot, slots: { [slot]: { digest: digests[version] } } });
    }
    // Reconnected after each simulated reboot (connectivity is written in short batches, so wait for it).
    await waitFor(async () => (await host()).status.connectivity === 'online', 5_000);
    const reasons = (await t.api('GET', '/api/v1/events?limit=500')).body.items
      .filter((e: any) => e.spec.involvedObject.name === name)
      .map((e: any) => e.spec.reason);
    expect(reasons.filter((r: string) => r === 'ImageCommitted')).toHaveLength(2);
    expect(reasons).toEqual(expect.arrayContaining(['ImageStaged', 'Rebooting']));
  });
});
