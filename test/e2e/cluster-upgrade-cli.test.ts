import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIGEST, FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { cli } from '../support/cli-process.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/** `edgeplane plan cluster`, the upgrade actions and `edgeplane reset host` as a real process against a real server. */
describe('edgeplane plan / pause / retry / reset', () => {
  let t: TestServer;
  let dir: string;
  let env: Record<string, string>;
  const nodes: FakeNode[] = [];

  beforeAll(async () => {
    t = await testServer('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'ep-upgrade-cli-'));
    env = { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') };
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    for (let i = 0; i < 2; i++) nodes.push(await FakeNode.create(t, token));
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the plan of a changed manifest, refuses actions without an upgrade, resets only free hosts', async () => {
    const [node, free] = nodes;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    const spec = { profile: { name: 'edge', revision: 1 }, nodes: [{ host: node.name, role: 'control-plane' }], variables: { site: 's1' } };
    expect((await t.api('POST', '/api/v1/clusters', { metadata: { name: 'shop' }, spec })).status).toBe(201);
    await waitFor(() => node.spec()?.spec?.kubernetes);
    node.reportReady(DIGEST, 'v1.30.4+k3s1');
    await waitFor(async () => (await t.api('GET', '/api/v1/clusters/shop')).body.status.profileRevision === 1);

    writeFileSync(
      join(dir, 'shop.yaml'),
      `apiVersion: edgeplane.io/v1\nkind: Cluster\nmetadata: {name: shop}\nspec:\n  profile: {name: edge, revision: 1}\n  nodes: [{host: ${node.name}, role: control-plane}]\n  variables: {site: s2}\n`,
    );
    const plan = await cli(['plan', 'cluster', 'shop', '-f', join(dir, 'shop.yaml')], env);
    expect(plan.code, plan.out).toBe(0);
    expect(plan.stdout).toContain('cluster shop: revision 1 -> 1');
    expect(plan.stdout).toMatch(new RegExp(`${node.name}\\s+control-plane\\s+config-reload\\s+addons`));
    const json = JSON.parse((await cli(['plan', 'cluster', 'shop', '-f', join(dir, 'shop.yaml'), '-o', 'json'], env)).stdout);
    expect(json.nodes[0]).toMatchObject({ host: node.name, change: 'config-reload' });

    const pause = await cli(['pause', 'cluster', 'shop'], env);
    expect(pause.code).not.toBe(0);
    expect(pause.out).toContain('InvalidState');

    const refused = await cli(['reset', 'host', node.name], env);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain('HostInCluster');
    const reset = await cli(['reset', 'host', free.name], env);
    expect(reset.code, reset.out).toBe(0);
    expect(reset.stdout).toContain(`host/${free.name} reset`);
  }, 60_000);
});
