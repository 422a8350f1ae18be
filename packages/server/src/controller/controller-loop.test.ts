import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ControllerLoop } from './controller-loop.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ControllerLoop', () => {
  it('never overlaps passes and runs once more after a nudge during a pass', async () => {
    let active = 0;
    let maxActive = 0;
    let passes = 0;
    const loop = new ControllerLoop(
      'test',
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        passes++;
        await tick(30);
        active--;
      },
      pino({ level: 'silent' }),
      60_000,
    );
    loop.start(); // first pass
    await tick(5);
    loop.nudge();
    loop.nudge();
    loop.nudge(); // three nudges mid-pass collapse into one more pass
    await tick(100);
    expect(passes).toBe(2);
    expect(maxActive).toBe(1);
    await loop.stop();
    loop.nudge();
    await tick(40);
    expect(passes).toBe(2);
    expect(loop.stopped).toBe(true);
  });

  it('keeps going after a failing pass', async () => {
    let calls = 0;
    const loop = new ControllerLoop(
      'test',
      async () => {
        calls++;
        if (calls === 1) throw new Error('boom');
      },
      pino({ level: 'silent' }),
      10,
    );
    loop.start();
    await tick(60);
    await loop.stop();
    expect(calls).toBeGreaterThan(1);
  });
});
