import { describe, expect, it } from 'vitest';
import { planHeadline } from './plan.js';

describe('plan headline', () => {
  it('says "new" for a cluster that never ran instead of a question mark', () => {
    expect(planHeadline({ cluster: 'shop-1', toRevision: 2 })).toBe('cluster shop-1: revision 2 (new: the cluster has not run any revision yet)');
    expect(planHeadline({ cluster: 'shop-1', fromRevision: 2, toRevision: 3 })).toBe('cluster shop-1: revision 2 -> 3');
  });
});
