import { describe, expect, it } from 'vitest';
import { matchesSelector, parseLabelSelector } from './label-selector.js';

describe('label selectors', () => {
  const labels = { env: 'prod', region: 'eu', 'edgeplane.io/simulated': 'true' };
  const m = (s: string) => matchesSelector(labels, parseLabelSelector(s));
  it('matches equality, inequality, sets and existence', () => {
    expect(m('env=prod')).toBe(true);
    expect(m('env==prod,region=eu')).toBe(true);
    expect(m('env!=prod')).toBe(false);
    expect(m('region in (us, eu)')).toBe(true);
    expect(m('region notin (eu)')).toBe(false);
    expect(m('edgeplane.io/simulated')).toBe(true);
    expect(m('!gpu')).toBe(true);
    expect(m('gpu')).toBe(false);
    expect(m('')).toBe(true);
  });
  it('rejects garbage with a stable code', () => {
    expect(() => parseLabelSelector('env=(')).toThrowError(expect.objectContaining({ code: 'InvalidLabelSelector' }));
  });
});
