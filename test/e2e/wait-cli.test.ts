import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIGEST, FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { runCli } from '../support/cli-process.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

const VERSION = 'v1.30.4+k3s1';

/** `edgeplane wait` as a real process against a real server, with hand-driven nodes. */
describe('edgeplane wait', () => {
  let t: TestServer;
  let dir: string;
  let env: Record<string, string>;
  const nodes: FakeNode[] = [];
  const get = async (path: string) => (await t.api('GET', path)).body;
  const exitOf = async (p: ReturnType<typeof runCli>) => p.proc.exitCode ?? (await once(p.proc, 'exit'))[0];

  beforeAll(async () => {
    t = await testServer('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'ep-wait-cli-'));
    env = { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') };
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    for (let i = 0; i < 3; i++) nodes.push(await FakeNode.create(t, token));
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits non-zero at once, with the reason, when the cluster fails (not at its timeout)', async () => {
    const [node] = nodes;
    const spec = { profile: { name: 'edge', revision: 1 }, nodes: [{ host: node.name, role: 'control-plane' }], variables: { site: 's1' } };
    expect((await t.api('POST', '/api/v1/clusters', { metadata: { name: 'broken' }, spec })).status).toBe(201);
    await waitFor(() => node.spec()?.spec?.kubernetes);
    const started = Date.now();
    const wait = runCli(['wait', 'cluster', 'broken', '--for', 'phase=Running', '--timeout', '10m'], env);
    await wait.waitForOutput(/Provisioning: 0\/1 nodes Ready/);
    node.report({
      os: { phase: 'FellBack', message: 'fell back to slot A: health check "kubelet" failed', bootedSlot: 'A', activeSlot: 'A', digest: DIGEST, slots: {} },
    });
    expect(await exitOf(wait)).toBe(1);
    expect(wait.output()).toContain(`Error: clusters/broken will not reach phase=Running: cluster is Failed: ${node.name}: os: fell back to slot A`);
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 90_000);

  it('shows each upgrade phase as it changes and exits 0 once the upgrade to the applied spec succeeded', async () => {
    const [, a, b] = nodes;
    const spec = {
      profile: { name: 'edge', revision: 1 },
      nodes: [
        { host: a.name, role: 'control-plane' },
        { host: b.name, role: 'worker' },
      ],
      variables: { site: 's1' },
    };
    expect((await t.api('POST', '/api/v1/clusters', { metadata: { name: 'shop' }, spec })).status).toBe(201);
    for (const n of [a, b]) {
      await waitFor(() => n.spec()?.spec?.kubernetes);
      n.reportReady(DIGEST, VERSION);
    }
    await waitFor(async () => (await get('/api/v1/clusters/shop')).status.profileRevision === 1);

    // A Kubernetes configuration change rolls node by node: each after the previous one reports Ready again.
    const body = profileBody('edge');
    Object.assign(body.spec.layers, {
      kubernetes: { distribution: 'k3s', version: VERSION, config: { 'cluster-domain': 'cluster.local', 'kubelet-arg': 'max-pods=150' } },
    });
    expect((await t.api('PUT', '/api/v1/clusterprofiles/edge', body)).status).toBe(200);
    const gen = new Map([a, b].map((n) => [n.name, n.spec().generation]));
    const patched = await t.api(
      'PATCH',
      '/api/v1/clusters/shop',
      { spec: { profile: { name: 'edge', revision: 2 } } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(patched.status).toBe(200);
    const wait = runCli(['wait', 'cluster', 'shop', '--for', 'upgrade=Succeeded', '--timeout', '2m'], env);
    // Each node reports its new configuration Ready only once the CLI has shown it in progress.
    for (const [i, n] of [a, b].entries()) {
      await waitFor(() => n.spec().generation > gen.get(n.name)!);
      await wait.waitForOutput(new RegExp(`Rolling: ${i}/2 nodes upgraded`));
      n.reportReady(DIGEST, VERSION);
    }
    expect(await exitOf(wait), wait.output()).toBe(0);
    const out = wait.output();
    expect(out).toContain('clusters/shop condition met: upgrade=Succeeded');
    expect(out).toMatch(new RegExp(`^Upgrade \\d+ \\(revision 1 -> 2\\) Rolling: 0/2 nodes upgraded \\(${a.name} \\w+, ${b.name} Pending\\)$`, 'm'));
    expect(out).toMatch(new RegExp(`^Upgrade \\d+ \\(revision 1 -> 2\\) Rolling: 1/2 nodes upgraded \\(${a.name} Done, ${b.name} \\w+\\)$`, 'm'));
    expect(out).toMatch(
      new RegExp(`^Upgrade \\d+ \\(revision 1 -> 2\\) Succeeded: 2/2 nodes upgraded \\(${a.name} Done, ${b.name} Done\\); every node runs revision 2$`, 'm'),
    );

    const described = await runCli(['describe', 'cluster', 'shop'], env);
    expect(await exitOf(described)).toBe(0);
    expect(described.output()).toMatch(/^Upgrade:\n {2}Upgrade: {6}\d+: revision 1 -> 2\n {2}State: {8}Succeeded, 2\/2 node\(s\) done\n/m);
    expect(described.output()).toMatch(new RegExp(`^\\s+${b.name}\\s+worker\\s+service-restart\\s+kubernetes\\.config\\.kubelet-arg\\s+Done`, 'm'));
  }, 120_000);
});
