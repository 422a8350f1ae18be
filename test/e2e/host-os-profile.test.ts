import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '@edgeplane/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { startSimFleet } from '../support/sim-fleet.js';

/**
 * Host OS profiles end to end: a real OCI registry, the real server, and a simulated
 * Virtualized Edge appliance (real agent, SimDevice A/B slots, libvirt test driver) that belongs to
 * no cluster. An OS-only profile assigned with spec.osProfile moves it from image 1 to 2 through
 * the agent's real os manager (trial boot, commit); image 3 fails its health check and the host
 * falls back to image 2. Agent-side flow: one dialect is enough (the store holds the host only).
 */
describe('host OS profile on a simulated appliance', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  let name: string;
  const digests: Record<string, string> = {};
  const MERGE = { contentType: 'application/merge-patch+json' };
  const env = () => ({ EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') });
  const host = async () => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;
  const events = async () =>
    (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${name}&limit=500`)).body.items.map((e: any) => e.spec);
  /** Revision N of the OS-only profile: image `version`, optional health checks. */
  const setProfile = async (version: string, healthChecks?: unknown[]) => {
    const body = {
      apiVersion: 'edgeplane.io/v1',
      kind: 'ClusterProfile',
      metadata: { name: 'appliance-os' },
      spec: { layers: { os: { image: `${registry.host}/edge/os:${version}` } }, ...(healthChecks ? { healthChecks } : {}) },
    };
    const exists = (await t.api('GET', '/api/v1/clusterprofiles/appliance-os')).status === 200;
    const r = await t.api(exists ? 'PUT' : 'POST', exists ? '/api/v1/clusterprofiles/appliance-os' : '/api/v1/clusterprofiles', body);
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    return r.body.status.latestRevision as number;
  };
  const assign = async (revision: number) => {
    const r = await t.api('PATCH', `/api/v1/edgehosts/${name}`, { spec: { osProfile: { name: 'appliance-os', revision } } }, MERGE);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-host-os-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    for (const version of ['1.0.0', '2.0.0', '3.0.0']) digests[version] = await pushOsImage(registry, join(dir, 'layout'), version);
    const sim = await startSimFleet(t, { sites: 1, appliances: 1, dataDir: join(dir, 'sim'), backoffCapMs: 200 });
    fleet = sim.fleet;
    name = sim.appliances[0];
    await waitFor(async () => (await host()).status.agent?.capabilities?.includes('libvirt'), 20_000);
  }, 90_000);
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('upgrades the appliance A/B from image 1 to 2 through spec.osProfile; image 3 fails its health check and it falls back to 2', async () => {
    // Image 1 the way an operator does it: one manifest with the OS-only profile and the host's assignment.
    await writeFile(
      join(dir, 'appliance-os.yaml'),
      `apiVersion: edgeplane.io/v1
kind: ClusterProfile
metadata: {name: appliance-os}
spec:
  layers:
    os: {image: ${registry.host}/edge/os:1.0.0}
---
apiVersion: edgeplane.io/v1
kind: EdgeHost
metadata: {name: ${name}}
spec:
  osProfile: {name: appliance-os}
`,
    );
    const applied = await cli(['apply', '-f', join(dir, 'appliance-os.yaml')], env());
    expect(applied.code, applied.out).toBe(0);
    expect(applied.stdout).toBe(`clusterprofiles/appliance-os created\nedgehosts/${name} configured\n`);
    expect(await setProfile('2.0.0')).toBe(2);
    // SIMULATION: `edgeplane-sim-health fail` is the SimDevice stand-in for a check command that exits 1.
    const failing = [{ name: 'app-ready', type: 'command', command: ['edgeplane-sim-health', 'fail', 'app answered 503'], retries: 1 }];
    expect(await setProfile('3.0.0', failing)).toBe(3);

    for (const [revision, version, slot] of [
      [1, '1.0.0', 'B'],
      [2, '2.0.0', 'A'],
    ] as const) {
      // Revision 1 was pinned by the apply (the latest then); moving on is an explicit update.
      if (revision > 1) await assign(revision);
      const h = await waitFor(async () => {
        const x = await host();
        return x.status.os?.upToDate && x.status.os.desiredDigest === digests[version] && x.status.os.phase === 'Committed' && x;
      }, 30_000);
      expect(h.spec.osProfile).toEqual({ name: 'appliance-os', revision });
      expect(h.status.os).toMatchObject({
        profile: 'appliance-os',
        revision,
        digest: digests[version],
        bootedSlot: slot,
        activeSlot: slot,
        phase: 'Committed',
      });
      expect(h.status.conditions).toContainEqual(expect.objectContaining({ type: 'OsUpToDate', status: 'True' }));
      expect(h.status.agent.managers.os.slots[slot].digest).toBe(digests[version]);
    }

    await assign(3);
    const back = await waitFor(async () => {
      const x = await host();
      return x.status.os?.desiredDigest === digests['3.0.0'] && x.status.os.phase === 'FellBack' && x;
    }, 30_000);
    // Back on image 2 in its committed slot, and the API says why.
    expect(back.status.os).toMatchObject({ revision: 3, digest: digests['2.0.0'], bootedSlot: 'A', activeSlot: 'A', upToDate: false });
    expect(back.status.os.message).toContain('health check "app-ready" failed');
    expect(back.status.os.message).toContain('app answered 503');
    const cond = back.status.conditions.find((c: any) => c.type === 'OsUpToDate');
    expect(cond).toMatchObject({ status: 'False', reason: 'FellBack' });
    expect(cond.message).toContain('app answered 503');
    // Still an appliance: its virt manager reports libvirt after the reboots.
    expect(back.status.agent.managers.virt.libvirt).toBeDefined();

    const reasons = (await events()).map((e: any) => e.reason);
    expect(reasons.filter((r: string) => r === 'ImageCommitted')).toHaveLength(2);
    expect(reasons).toEqual(expect.arrayContaining(['ImageStaged', 'Rebooting', 'FallingBack', 'FellBack']));
    expect(reasons.filter((r: string) => r === 'OsProfileAssigned')).toHaveLength(3);

    const described = await cli(['describe', 'host', name], env());
    expect(described.code, described.out).toBe(0);
    expect(described.stdout).toMatch(
      new RegExp(
        `^OS:\\s+profile appliance-os revision 3, desired ${digests['3.0.0'].slice(0, 19)}, running ${digests['2.0.0'].slice(0, 19)} in slot A \\(FellBack\\); NOT up to date: fell back to slot A: health check "app-ready" failed`,
        'm',
      ),
    );
    expect(described.stdout).toMatch(/FellBack\s+.*app answered 503/);
  }, 120_000);
});
