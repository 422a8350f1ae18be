import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '@edgeplane/sim';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, startSimFleet } from '../support/sim-fleet.js';

/**
 * The example cluster of docs/virtualized-edge.md (three VMs over two networks and two pools), read
 * from the document itself, on a fresh simulated appliance (`edgeplane sim --sites 1 --appliances 1`):
 * it fits as written, without an overcommit key, and reaches Running.
 */
describe('the Virtualized Edge guide example on a simulated appliance', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let dir: string;
  afterAll(async () => {
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fits without overcommit and reaches Running', async () => {
    const doc = readFileSync(new URL('../../docs/virtualized-edge.md', import.meta.url), 'utf8');
    const block = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]).find((y) => /type: virtualized/.test(y));
    expect(block).toBeDefined();
    const example = parse(block!);
    expect(example.spec.vms).toHaveLength(3);
    dir = await mkdtemp(join(tmpdir(), 'ep-virt-guide-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    await createK3sProfile(t, registry, example.spec.profile.name);
    const sim = await startSimFleet(t, { sites: 1, appliances: 1, dataDir: join(dir, 'sim') });
    fleet = sim.fleet;
    // As the guide has it, on this appliance and the profile's first revision; overcommit as the defaults.
    const { overcommit: _defaults, ...spec } = example.spec;
    const r = await t.api('POST', '/api/v1/clusters', {
      metadata: example.metadata,
      spec: { ...spec, appliance: sim.appliances[0], profile: { name: example.spec.profile.name, revision: 1 } },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const running = await waitFor(async () => {
      const c = (await t.api('GET', `/api/v1/clusters/${example.metadata.name}`)).body;
      return c.status?.phase === 'Running' && c.status.nodes.length === 3 && c;
    }, 90_000);
    expect(running.status.nodes).toHaveLength(3);
  }, 150_000);
});
