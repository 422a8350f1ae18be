import { describe, expect, it } from 'vitest';
import { RegistrationGate } from './registration-gate.js';

describe('RegistrationGate', () => {
  it('is saturated only when every slot is busy and the queue is full; then refuses without running', async () => {
    const gate = new RegistrationGate(1, 1);
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    const ran: number[] = [];
    const first = gate.run(async () => {
      await blocked;
      ran.push(1);
    });
    expect(gate.saturated).toBe(false);
    const second = gate.run(async () => void ran.push(2));
    expect(gate.saturated).toBe(true);
    // A third is refused at once, and its function never runs.
    expect(await gate.run(async () => void ran.push(3))).toBeUndefined();
    expect(gate.refused).toBe(1);
    release();
    await Promise.all([first, second]);
    expect(ran).toEqual([1, 2]);
    expect(gate.saturated).toBe(false);
    expect(gate.inFlight).toBe(0);
  });
});
