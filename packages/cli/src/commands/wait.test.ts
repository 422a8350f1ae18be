import { describe, expect, it } from 'vitest';
import { clusterProgress, parseCondition } from './wait.js';

const cluster = (phase: string, nodes: [string, string, boolean][]) => ({
  metadata: { name: 'c' },
  spec: { nodes: nodes.map(([host]) => ({ host })) },
  status: {
    phase,
    nodes: nodes.map(([host, p, ready]) => ({ host, phase: p, ready })),
    conditions: [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False' }],
  },
});

describe('wait', () => {
  it('understands phase=, condition= and dotted paths', () => {
    const running = cluster('Running', [['a', 'Ready', true]]);
    const prov = cluster('Provisioning', [['a', 'Provisioning', false]]);
    expect(parseCondition('phase=Running').met(running)).toBe(true);
    expect(parseCondition('phase=Running').met(prov)).toBe(false);
    expect(parseCondition('condition=Ready').met(running)).toBe(true);
    expect(parseCondition('condition=Ready').current(prov)).toBe('condition Ready=False');
    expect(parseCondition('status.phase=Provisioning').met(prov)).toBe(true);
    expect(() => parseCondition('Running')).toThrow(/phase=<Phase>/);
  });

  it('shows each node: a bar on a terminal, a plain line otherwise', () => {
    const c = cluster('Provisioning', [
      ['a', 'Ready', true],
      ['b', 'Pending', false],
    ]);
    expect(clusterProgress(c, false)).toBe('Provisioning: 1/2 nodes Ready (a Ready, b Pending)');
    expect(clusterProgress(c, true)).toBe('[##########..........] 1/2 nodes Ready  Provisioning  a Ready, b Pending');
  });
});
