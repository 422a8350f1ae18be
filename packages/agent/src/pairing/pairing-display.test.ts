import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Agent } from '../agent.js';
import { attachPairingDisplay, pairingConsoles, writeToConsole } from './pairing-display.js';

describe('pairing display on the consoles', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-pairing-consoles-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('reads the consoles from EDGEPLANE_PAIRING_CONSOLES', () => {
    expect(pairingConsoles({ EDGEPLANE_PAIRING_CONSOLES: '/dev/tty0, /dev/ttyS0,' })).toEqual(['/dev/tty0', '/dev/ttyS0']);
    expect(pairingConsoles({})).toEqual([]);
  });

  it('writes the banner with the code to every console and skips one that cannot be opened', async () => {
    // Regular files stand in for the screen and the serial port (the same open/write path as a tty).
    const screen = join(dir, 'tty0');
    const serial = join(dir, 'ttyS0');
    await writeFile(screen, '');
    await writeFile(serial, '');
    const agent = new EventEmitter() as unknown as Agent;
    const written: string[] = [];
    const detach = attachPairingDisplay(agent, {
      write: (t) => written.push(t),
      page: { enabled: false, port: 0, listen: [] },
      logger: pino({ level: 'silent' }),
      consoles: [screen, join(dir, 'no-such-console'), serial],
    });
    agent.emit('pairing', { code: 'ABCD-1234', claimUrl: 'https://cp.example/claim/ABCD-1234', expiresAt: '2026-12-06T12:00:00Z', deviceUid: 'uid-1' });
    for (const console of [screen, serial]) {
      await expect.poll(() => readFile(console, 'utf8')).toContain('Pairing code: ABCD-1234');
      // Terminals in raw mode need \r\n.
      expect(await readFile(console, 'utf8')).toContain('Pairing code: ABCD-1234\r\n');
    }
    expect(written.join('')).toContain('Pairing code: ABCD-1234\n');
    await detach();
  });

  it('reports a console it cannot write', async () => {
    expect(await writeToConsole(join(dir, 'missing', 'tty'), 'x')).toBe(false);
  });
});
