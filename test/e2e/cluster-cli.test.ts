import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIGEST, FakeNode } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { cli, runCli } from '../support/cli-process.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

const VERSION = 'v1.29.8+rke2r1';

/** The cluster verbs of the CLI, as a real process, against a real server with hand-driven nodes. */
describe('edgeplane apply/get/wait/kubeconfig/describe for clusters', () => {
  let t: TestServer;
  let dir: string;
  let env: Record<string, string>;
  let cp: FakeNode;
  let worker: FakeNode;

  beforeAll(async () => {
    t = await testServer('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'ep-cluster-cli-'));
    env = { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') };
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    cp = await FakeNode.create(t, token);
    worker = await FakeNode.create(t, token);
  });
  afterAll(async () => {
    cp?.close();
    worker?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('provisions a cluster from YAML and follows it to Running', async () => {
    writeFileSync(
      join(dir, 'edge.yaml'),
      `apiVersion: edgeplane.io/v1
kind: ClusterProfile
metadata: {name: edge-rke2}
spec:
  layers:
    os: {image: "127.0.0.1:1/edge/os@${DIGEST}"}
    kubernetes: {distribution: rke2, version: "${VERSION}"}
---
apiVersion: edgeplane.io/v1
kind: Cluster
metadata: {name: shop-1}
spec:
  profile: {name: edge-rke2, revision: 1}
  nodes:
    - {host: ${cp.name}, role: control-plane}
    - {host: ${worker.name}, role: worker}
`,
    );
    const applied = await cli(['apply', '-f', join(dir, 'edge.yaml')], env);
    expect(applied.code, applied.out).toBe(0);
    const profiles = await cli(['get', 'profiles'], env);
    expect(profiles.stdout).toMatch(/^edge-rke2\s+1\s+rke2\s+v1\.29\.8\+rke2r1\s+127\.0\.0\.1:1\/edge\/os@sha256:a+/m);

    const wait = runCli(['wait', 'cluster', 'shop-1', '--for', 'phase=Running', '--timeout', '60s', '--interval', '1s'], env);
    await wait.waitForOutput(/Provisioning: 0\/2 nodes Ready/);
    await waitFor(() => cp.spec()?.spec?.kubernetes);
    cp.reportReady(DIGEST, VERSION, { kubeconfig: 'apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\n' });
    await waitFor(() => worker.spec()?.spec?.kubernetes);
    // rke2 joins through its supervisor port.
    expect(worker.spec().spec.kubernetes.server).toMatch(/^https:\/\/.+:9345$/);
    worker.reportReady(DIGEST, VERSION);
    await wait.waitForOutput(/clusters\/shop-1 condition met: phase=Running/);
    const code = wait.proc.exitCode ?? (await once(wait.proc, 'exit'))[0];
    expect(code).toBe(0);
    expect(wait.output()).toMatch(/Running: 2\/2 nodes Ready/);

    const list = await cli(['get', 'clusters'], env);
    expect(list.stdout).toMatch(/^NAME\s+PHASE\s+PROFILE\s+REVISION\s+NODES\s+ENDPOINT/);
    expect(list.stdout).toMatch(/^shop-1\s+Running\s+edge-rke2\s+1\s+2\s+https:\/\//m);

    const file = join(dir, 'kubeconfig');
    const kc = await cli(['kubeconfig', 'shop-1', '-o', file], env);
    expect(kc.code, kc.out).toBe(0);
    const endpoint = cp.spec().spec.kubernetes.controlPlaneEndpoint;
    expect(readFileSync(file, 'utf8')).toContain(`server: ${endpoint}`);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const described = await cli(['describe', 'cluster', 'shop-1'], env);
    expect(described.stdout).toMatch(/^Nodes:\n\s+HOST\s+ROLE\s+PHASE\s+READY/m);
    expect(described.stdout).toMatch(new RegExp(`${worker.name}\\s+worker\\s+Ready\\s+true\\s+${VERSION.replace(/[.+]/g, '\\$&')}\\s+B`));
    expect(described.stdout).toMatch(/Ready\s+True\s+AllNodesReady/);
    expect(described.stdout).toContain('InitializingControlPlane');
    expect(described.stdout).toContain('ClusterRunning');

    const late = await cli(['wait', 'cluster', 'shop-1', '--for', 'phase=Failed', '--timeout', '1s'], env);
    expect(late.code).toBe(1);
    expect(late.out).toContain('timed out waiting for clusters/shop-1 phase=Failed');
  });
});
