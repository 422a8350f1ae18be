import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../kube-client.js';
import { available, evictRound, recordNodeDown, type SchedulableCluster, schedule } from './sim-workloads.js';

const deployment: KubeObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'default' },
  spec: { replicas: 2, selector: { matchLabels: { app: 'web' } } },
};
const pdb: KubeObject = {
  apiVersion: 'policy/v1',
  kind: 'PodDisruptionBudget',
  metadata: { name: 'web', namespace: 'default' },
  spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } },
};
const nodes = (...names: string[]): SchedulableCluster['nodes'] => Object.fromEntries(names.map((n) => [n, { ready: true }]));

describe('simulated scheduler', () => {
  it('spreads replicas, and a drain moves them to another node before the node goes down', () => {
    const c: SchedulableCluster = { nodes: nodes('a', 'b', 'c') };
    schedule(c, [deployment, pdb]);
    const w = c.workloads!['default/web'];
    expect(new Set(w.pods.map((p) => p.node)).size).toBe(2);
    const victim = w.pods[0].node!;
    c.nodes[victim].unschedulable = true;
    expect(evictRound(c, [deployment, pdb], victim)).toEqual({ evicted: 1, remaining: 0 });
    expect(w.pods.map((p) => p.node)).not.toContain(victim);
    recordNodeDown(c, victim);
    c.nodes[victim].ready = false;
    expect(c.disruptions ?? []).toEqual([]);
    expect(available(c, w)).toBe(2);
  });

  it('honours the disruption budget on a single node: nothing can move, the drain keeps the last replica', () => {
    const c: SchedulableCluster = { nodes: nodes('solo') };
    schedule(c, [deployment, pdb]);
    c.nodes.solo.unschedulable = true;
    const first = evictRound(c, [deployment, pdb], 'solo');
    expect(first).toEqual({ evicted: 1, remaining: 1 }); // the first eviction leaves one available, the second would not
    expect(evictRound(c, [deployment, pdb], 'solo')).toEqual({ evicted: 0, remaining: 1 });
    recordNodeDown(c, 'solo');
    expect(c.disruptions?.map((d) => d.node)).toEqual(['solo']);
  });
});
