import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentStatus, HostSpec } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SimDevice } from '../../device/sim/sim-device.js';
import { SimKubernetes } from '../../device/sim/sim-kubernetes.js';
import { AddonsManager } from '../addons/addons.manager.js';
import { ManagerRunner } from '../runner.js';
import { KubernetesManager } from './kubernetes.manager.js';

/** The kubernetes and addons managers driven by the agent's ManagerRunner, on simulated devices. */
let dir: string;
let registry: SimKubernetes;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k8s-runner-'));
  registry = new SimKubernetes();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function runner(name: string, reports: AgentStatus[], events: string[]): ManagerRunner {
  const device = new SimDevice({ root: join(dir, name), hostname: name, kubernetes: registry });
  return new ManagerRunner({
    device,
    dataDir: join(dir, name, 'data'),
    log: pino({ level: 'silent' }),
    managers: [new AddonsManager(device), new KubernetesManager(device, { readyTimeoutMs: 1_000, pollIntervalMs: 10 })],
    report: (s) => reports.push(s),
    emitEvent: (_type, reason) => events.push(reason),
    retry: { baseMs: 10, capMs: 20 },
  });
}

// What the server's cluster controller renders (packages/server/src/cluster/render.ts); the join
// secret in the form the server mints it (48 hex characters: a plain password k3s/rke2 accept).
const kubernetes = (nodeName: string, init: boolean, token = '5f0c3e9a1b7d2c4e6f8a0b1c3d5e7f9a1b2c3d4e5f6a7b8c') => ({
  distribution: 'rke2' as const,
  version: 'v1.30.4+rke2r1',
  cluster: 'depot-3',
  nodeName,
  role: 'control-plane' as const,
  init,
  controlPlaneEndpoint: 'https://10.77.0.2:6443',
  ...(init ? {} : { server: 'https://10.77.0.2:9345' }),
  token,
  podCidr: '10.42.0.0/16',
  serviceCidr: '10.43.0.0/16',
  nodeLabels: {},
  nodeTaints: [],
  controlPlaneSchedulable: true,
  config: {},
});

describe('kubernetes + addons managers under the ManagerRunner', () => {
  it('reports valid status; a refused join stops until the server sends a corrected spec', async () => {
    const reportsA: AgentStatus[] = [];
    const a = runner('a', reportsA, []);
    const initSpec: HostSpec = {
      kubernetes: kubernetes('node-a', true),
      addons: { items: [{ name: 'cfg', manifest: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: v}\n' }] },
    };
    await a.submit(initSpec, 1);
    const lastA = reportsA.at(-1)?.managers;
    expect(lastA?.kubernetes).toMatchObject({ phase: 'Ready', ready: true, version: 'v1.30.4+rke2r1' });
    expect(lastA?.kubernetes?.kubeconfig).toContain('server: https://10.77.0.2:6443');
    expect(lastA?.addons).toMatchObject({ phase: 'Applied', applied: [{ name: 'cfg', objects: 1 }] });

    const reportsB: AgentStatus[] = [];
    const eventsB: string[] = [];
    const b = runner('b', reportsB, eventsB);
    await b.submit({ kubernetes: kubernetes('node-b', false, 'not-the-join-secret') }, 1);
    expect(reportsB.at(-1)?.managers?.kubernetes).toMatchObject({ phase: 'Failed', error: { component: 'kubernetes', phase: 'apply', retryable: false } });
    expect(eventsB).toContain('JoinRefused');

    await b.submit({ kubernetes: kubernetes('node-b', false) }, 2);
    expect(reportsB.at(-1)?.managers?.kubernetes).toMatchObject({ phase: 'Ready', ready: true });
    expect(reportsB.at(-1)?.managers?.kubernetes?.error).toBeUndefined();
    expect(registry.nodeNames('10.77.0.2', 6443)).toEqual(['node-a', 'node-b']);

    // The same spec again: every manager is converged, nothing is re-applied.
    const before = eventsB.length;
    await b.submit({ kubernetes: kubernetes('node-b', false) }, 3);
    expect(eventsB.slice(before)).toEqual([]);

    // The cluster is deleted: both hosts leave; then the first one initializes another cluster.
    await b.submit({}, 4);
    await a.submit({}, 2);
    expect(registry.nodeNames('10.77.0.2', 6443)).toEqual([]);
    expect(reportsA.at(-1)?.managers).toEqual({ kubernetes: { phase: 'Pending', ready: false, message: 'no Kubernetes in the desired spec' } });
    await a.submit({ ...initSpec, kubernetes: kubernetes('node-a', true, '0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071') }, 3);
    const again = reportsA.at(-1)?.managers;
    expect(again?.addons).toMatchObject({ phase: 'Applied', applied: [{ name: 'cfg', objects: 1 }] });
    const token = parse(again?.kubernetes?.kubeconfig ?? '').users[0].user.token;
    expect(registry.session({ server: 'https://10.77.0.2:6443', token }).get('v1', 'ConfigMap', 'cfg')).toBeDefined();
  });
});
