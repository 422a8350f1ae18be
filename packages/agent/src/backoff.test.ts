import { describe, expect, it } from 'vitest';
import { Backoff, sleep } from './backoff.js';

describe('Backoff', () => {
  it('doubles the ceiling per attempt up to the cap, and reset starts over', () => {
    // random() = 1 - ε shows each attempt's ceiling.
    const top = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
    const ceilings = Array.from({ length: 7 }, () => top.next() + 1);
    expect(ceilings).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    top.reset();
    expect(top.next() + 1).toBe(100);
  });

  it('jitters each delay uniformly below the ceiling (full jitter), so agents spread their reconnects', () => {
    const values = [0, 0.25, 0.5];
    let i = 0;
    const b = new Backoff({ baseMs: 400, capMs: 10_000, random: () => values[i++ % values.length] });
    expect([b.next(), b.next(), b.next()]).toEqual([0, 200, 800]);
    // With the real random source, many agents at the same attempt do not all pick the same delay.
    const delays = new Set(Array.from({ length: 50 }, () => new Backoff({ baseMs: 1000, capMs: 30_000 }).next()));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(0);
    for (const d of delays) expect(d).toBeLessThan(1000);
  });

  it('sleep resolves false when aborted instead of throwing', async () => {
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    expect(await p).toBe(false);
    expect(await sleep(1, new AbortController().signal)).toBe(true);
  });
});
