import { describe, expect, it } from 'vitest';
import { planDescriptorBudget, readOpenFileLimits } from './descriptor-budget.js';

describe('descriptor budget', () => {
  it('reads the open-file limits of /proc/<pid>/limits', () => {
    const text =
      'Max processes             63704                63704                processes\nMax open files            1024                 524288               files\n';
    expect(readOpenFileLimits(text)).toEqual({ soft: 1024, hard: 524288 });
    expect(readOpenFileLimits('Max open files            unlimited            unlimited            files')).toEqual({
      soft: Number.POSITIVE_INFINITY,
      hard: Number.POSITIVE_INFINITY,
    });
    expect(readOpenFileLimits('')).toBeUndefined();
  });

  it('keeps a reserve of a tenth, at least 200, below the limit for agent channels', () => {
    expect(planDescriptorBudget(512)).toEqual({ limit: 512, reserve: 200, maxAgentChannels: 312 });
    expect(planDescriptorBudget(20_000)).toEqual({ limit: 20_000, reserve: 2000, maxAgentChannels: 18_000 });
    expect(planDescriptorBudget(100).maxAgentChannels).toBe(0);
  });
});
