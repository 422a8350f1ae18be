import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Resource } from '../api-client.js';
import { clusterView, rolloutView } from '../progress.js';
import { type FakeApi, runCli, startFakeApi, tempConfigEnv } from '../test-support.js';
import { parseCondition, terminalFailure, upgradeState } from './wait.js';

const cluster = (phase: string, nodes: [string, string, boolean][], extra: Record<string, unknown> = {}, generation = 1): Resource => ({
  metadata: { name: 'c', generation },
  spec: { profile: { name: 'p', revision: 2 }, nodes: nodes.map(([host]) => ({ host, role: 'worker' })) },
  status: {
    phase,
    observedGeneration: generation,
    nodes: nodes.map(([host, p, ready]) => ({ host, role: 'worker', phase: p, ready })),
    conditions: [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False', message: phase === 'Failed' ? 'a: os: fell back to slot A' : undefined }],
    ...extra,
  },
});

const upgrade = (state: string, phases: [string, string][], generation = 2) => ({
  id: 7,
  state,
  fromRevision: 1,
  toRevision: 2,
  generation,
  nodes: phases.map(([host, phase]) => ({ host, role: 'worker', change: 'repave', reasons: ['os.digest'], phase })),
});

describe('wait conditions', () => {
  it('understands phase=, condition=[=Status], upgrade=, jsonpath=, delete and dotted paths', () => {
    const running = cluster('Running', [['a', 'Ready', true]]);
    const prov = cluster('Provisioning', [['a', 'Provisioning', false]]);
    expect(parseCondition('phase=Running').met(running)).toBe(true);
    expect(parseCondition('phase=Running').met(prov)).toBe(false);
    expect(parseCondition('condition=Ready').met(running)).toBe(true);
    expect(parseCondition('condition=Ready=false').met(prov)).toBe(true);
    expect(parseCondition('condition=Ready').current(prov)).toBe('condition Ready=False');
    expect(parseCondition('status.phase=Provisioning').met(prov)).toBe(true);
    expect(parseCondition('jsonpath={.status.phase}=Provisioning').met(prov)).toBe(true);
    expect(parseCondition('delete').met(undefined)).toBe(true);
    expect(parseCondition('delete').met(prov)).toBe(false);
    expect(() => parseCondition('Running')).toThrow(/phase=<Phase>/);
    expect(() => parseCondition('jsonpath=status.phase')).toThrow(/jsonpath=\{/);
  });

  it('phase= and condition= count only a status that saw the current spec (the Running of the spec before an apply does not)', () => {
    const stale = cluster('Running', [['a', 'Ready', true]]);
    stale.metadata.generation = 3;
    stale.status!.observedGeneration = 2;
    expect(parseCondition('phase=Running').met(stale)).toBe(false);
    expect(parseCondition('condition=Ready').met(stale)).toBe(false);
    // A plain path is taken literally.
    expect(parseCondition('status.phase=Running').met(stale)).toBe(true);
    stale.status!.observedGeneration = 3;
    expect(parseCondition('phase=Running').met(stale)).toBe(true);
  });

  it('upgrade=Succeeded is met only by the upgrade to the current generation, or a converged cluster', () => {
    // Just applied (generation 2), the controller has not seen it: the old upgrade does not count.
    const applied = cluster(
      'Running',
      [['a', 'Ready', true]],
      { observedGeneration: 1, profileRevision: 1, upgrade: upgrade('Succeeded', [['a', 'Done']], 1) },
      2,
    );
    expect(upgradeState(applied)).toBe('Pending');
    const rolling = cluster('Running', [['a', 'Ready', true]], { profileRevision: 1, upgrade: upgrade('Rolling', [['a', 'Draining']]) }, 2);
    expect(upgradeState(rolling)).toBe('Rolling');
    const done = cluster('Running', [['a', 'Ready', true]], { profileRevision: 2, upgrade: upgrade('Succeeded', [['a', 'Done']]) }, 2);
    expect(parseCondition('upgrade=Succeeded').met(done)).toBe(true);
    // A change that needed no upgrade: seen, Running at the spec's revision.
    const noop = cluster('Running', [['a', 'Ready', true]], { profileRevision: 2, upgrade: upgrade('Succeeded', [['a', 'Done']], 1) }, 3);
    expect(upgradeState(noop)).toBe('Succeeded');
  });

  it('names terminal failures, but not a Failed cluster whose new spec the controller has not seen', () => {
    const running = parseCondition('phase=Running');
    expect(terminalFailure('Cluster', cluster('Failed', [['a', 'Failed', false]]), running)).toBe('cluster is Failed: a: os: fell back to slot A');
    expect(terminalFailure('Cluster', cluster('Failed', [['a', 'Failed', false]], { observedGeneration: 1 }, 2), running)).toBeUndefined();
    expect(terminalFailure('Cluster', cluster('Failed', [['a', 'Failed', false]]), parseCondition('delete'))).toBeUndefined();
    const failed = cluster(
      'Degraded',
      [['a', 'Failed', false]],
      { upgrade: { ...upgrade('Failed', [['a', 'FellBack']]), failedNode: 'a', message: 'trial boot fell back' } },
      2,
    );
    expect(terminalFailure('Cluster', failed, running)).toMatch(/^upgrade 7 to revision 2 Failed on a: trial boot fell back/);
    const cancelled = cluster('Running', [['a', 'Ready', true]], { upgrade: upgrade('Cancelled', [['a', 'Pending']]) }, 2);
    expect(terminalFailure('Cluster', cancelled, running)).toBeUndefined();
    expect(terminalFailure('Cluster', cancelled, parseCondition('upgrade=Succeeded'))).toMatch(/Cancelled/);
    const rollout = { metadata: { name: 'r' }, status: { phase: 'Aborted', stopReason: 'Aborted', message: 'abort requested' } };
    expect(terminalFailure('Rollout', rollout, parseCondition('phase=Succeeded'))).toBe('rollout is Aborted: Aborted: abort requested');
    const host = { metadata: { name: 'h' }, status: { os: { phase: 'FellBack', upToDate: false, message: 'health check kubelet failed' } } };
    expect(terminalFailure('EdgeHost', host, parseCondition('status.os.upToDate=true'))).toBe('os update FellBack: health check kubelet failed');
    // Just retried: a new spec (generation 3) the agent has not reported on yet.
    const retried = { metadata: { name: 'h', generation: 3 }, status: { ...host.status, observedGeneration: 2 } };
    expect(terminalFailure('EdgeHost', retried, parseCondition('status.os.upToDate=true'))).toBeUndefined();
  });
});

describe('wait progress views', () => {
  it('shows each node: a bar and a line per node on a terminal, one summary line otherwise', () => {
    const c = cluster('Provisioning', [
      ['a', 'Ready', true],
      ['b', 'Pending', false],
    ]);
    expect(clusterView(c).line).toBe('Provisioning: 1/2 nodes Ready (a Ready, b Pending)');
    expect(clusterView(c).block).toEqual(['[##########..........] 1/2 nodes Ready  Provisioning', '  a  worker  Ready', '  b  worker  Pending']);
    // A virtualized cluster: no spec.nodes, its VMs counted in status.desiredNodes.
    const vms = { ...c, spec: { vms: [{}, {}, {}] }, status: { ...c.status, desiredNodes: 3 } };
    expect(clusterView(vms).line).toBe('Provisioning: 1/3 nodes Ready (a Ready, b Pending)');
  });

  it('shows the upgrade phase of each node while an upgrade runs', () => {
    const c = cluster(
      'Running',
      [
        ['a', 'Ready', true],
        ['b', 'Ready', true],
      ],
      {
        upgrade: upgrade('Rolling', [
          ['a', 'Done'],
          ['b', 'Rebooting'],
        ]),
      },
      2,
    );
    expect(clusterView(c).line).toBe('Upgrade 7 (revision 1 -> 2) Rolling: 1/2 nodes upgraded (a Done, b Rebooting)');
    expect(clusterView(c).block[0]).toBe('[##########..........] 1/2 nodes upgraded  Rolling  revision 1 -> 2');
    expect(clusterView(c).block[2]).toBe('  b  worker  repave  Rebooting');
  });

  it('shows a rollout: batch, tally, each started cluster, and how to approve', () => {
    const r = {
      metadata: { name: 'shops' },
      status: {
        phase: 'AwaitingApproval',
        currentBatch: 1,
        batches: [{ name: 'canary' }, { name: 'rest' }],
        clusters: [
          { name: 's1', batch: 0, state: 'succeeded' },
          { name: 's2', batch: 1, state: 'pending' },
          { name: 's9', batch: -1, state: 'skipped', reason: 'SiteNotFound' },
        ],
      },
    };
    const v = rolloutView(r);
    expect(v.line).toBe(
      'AwaitingApproval batch 2/2 (rest): 1 succeeded, 0 failed, 1 skipped of 3 (s1 succeeded, s9 skipped); approve the next batch: edgeplane approve rollout shops',
    );
    expect(v.block).toContain('  s9  -        skipped    SiteNotFound');
  });
});

/** A shutdown signal that never comes (runCli's default is an immediate SIGTERM, for the server commands). */
const never = () => new Promise<string>(() => {});

describe('edgeplane wait against an API', () => {
  let api: FakeApi;
  let env: Record<string, string>;
  beforeAll(async () => {
    api = await startFakeApi();
    env = { ...tempConfigEnv(), EDGEPLANE_SERVER: api.url, EDGEPLANE_TOKEN: api.token };
  });
  afterAll(() => api.close());

  const put = (plural: string, r: Resource) => api.put(plural, r);
  const set = (plural: string, name: string, status: Record<string, unknown>) => {
    api.store.get(plural)!.get(name)!.status = status;
  };

  it('exits non-zero at once, with the reason, on a Failed cluster, a fallen-back host and an aborted rollout', async () => {
    put('clusters', cluster('Failed', [['a', 'Failed', false]]) as Resource);
    put('edgehosts', {
      metadata: { name: 'h1' },
      spec: {},
      status: { state: 'ready', os: { phase: 'FellBack', upToDate: false, message: 'kubelet unhealthy' } },
    });
    put('rollouts', { metadata: { name: 'r1' }, spec: {}, status: { phase: 'Aborted', stopReason: 'Aborted', clusters: [] } });
    for (const [args, reason] of [
      [['cluster', 'c', '--for', 'phase=Running'], 'clusters/c will not reach phase=Running: cluster is Failed: a: os: fell back to slot A'],
      [['host', 'h1', '--for', 'status.os.upToDate=true'], 'edgehosts/h1 will not reach status.os.upToDate=true: os update FellBack: kubelet unhealthy'],
      [['rollout', 'r1', '--for', 'phase=Succeeded'], 'rollouts/r1 will not reach phase=Succeeded: rollout is Aborted: Aborted'],
    ] as const) {
      const started = Date.now();
      const r = await runCli(['wait', ...args, '--timeout', '10m'], { env, waitForShutdown: never });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Error: ${reason}\n`);
      expect(Date.now() - started).toBeLessThan(30_000);
    }
  });

  it('prints the upgrade phases as they change and exits 0 when the upgrade succeeds', async () => {
    put('clusters', { ...cluster('Running', [['a', 'Ready', true]], { profileRevision: 1 }, 2), metadata: { name: 'u', generation: 2 } } as Resource);
    const phases = ['Draining', 'Rebooting', 'Done'];
    const steps: Record<string, unknown>[] = phases.map((p) => ({
      ...api.store.get('clusters')!.get('u')!.status,
      upgrade: upgrade(p === 'Done' ? 'Succeeded' : 'Rolling', [['a', p]]),
      ...(p === 'Done' ? { profileRevision: 2 } : {}),
    }));
    // Each time the CLI has looked, the upgrade moves one phase on.
    const polls = () => api.requests.filter((q) => q.path === '/api/v1/clusters/u').length;
    let seen = 0;
    const timer = setInterval(() => {
      if (polls() === seen) return;
      seen = polls();
      const next = steps.shift();
      if (next) set('clusters', 'u', next);
    }, 10);
    const r = await runCli(['wait', 'cluster', 'u', '--for', 'upgrade=Succeeded', '--interval', '1s', '--timeout', '1m'], {
      env,
      waitForShutdown: never,
    }).finally(() => clearInterval(timer));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('clusters/u condition met: upgrade=Succeeded\n');
    expect(r.stderr).toMatch(/^Upgrade 7 \(revision 1 -> 2\) Succeeded: 1\/1 nodes upgraded \(a Done\)$/m);
    expect(r.stderr).toMatch(/^Upgrade 7 \(revision 1 -> 2\) Rolling: 0\/1 nodes upgraded \(a Draining\)$/m);
    expect(r.stderr).toMatch(/^Upgrade 7 \(revision 1 -> 2\) Rolling: 0\/1 nodes upgraded \(a Rebooting\)$/m);
  });

  it('redraws the view in place on a terminal and says how long it waited on timeout', async () => {
    put('clusters', cluster('Provisioning', [['a', 'Provisioning', false]]) as Resource);
    const r = await runCli(['wait', 'cluster', 'c', '--for', 'phase=Running', '--timeout', '1s', '--interval', '1s'], {
      env,
      tty: true,
      waitForShutdown: never,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('\r\x1b[J[....................] 0/1 nodes Ready  Provisioning\n  a  worker  Provisioning\n');
    expect(r.stderr).toContain('Error: timed out waiting for clusters/c phase=Running (1s)');
  });

  it('ends the live view on its own line and exits 130 on Ctrl+C', async () => {
    put('clusters', cluster('Provisioning', [['a', 'Provisioning', false]]) as Resource);
    const r = await runCli(['wait', 'cluster', 'c', '--for', 'phase=Running', '--timeout', '10m'], {
      env,
      tty: true,
      waitForShutdown: () => new Promise((res) => setTimeout(() => res('SIGINT'), 300)),
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('  a  worker  Provisioning\nError: interrupted by SIGINT while waiting for clusters/c phase=Running\n');
  });

  it('shows duration defaults as given in --help', async () => {
    const r = await runCli(['wait', '--help']);
    expect(r.stdout).toContain('(default: 10m)');
    expect(r.stdout).toContain('(default: 1s)');
    expect(r.stdout).not.toMatch(/default: \d{4,}/);
  });
});
