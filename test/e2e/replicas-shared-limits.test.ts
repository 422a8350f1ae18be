import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAIRING_CODE_ALPHABET } from '@edgeplane/protocol';
import { type RunningServer, startServer } from '@edgeplane/server';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, TestDevice } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

const randomCode = () => Array.from({ length: 8 }, () => PAIRING_CODE_ALPHABET[Math.floor(Math.random() * PAIRING_CODE_ALPHABET.length)]).join('');

/**
 * Two replicas on one PostgreSQL database behind a load balancer: a client guessing pairing codes
 * gets one budget, not one per replica it reaches.
 */
describe('rate limits shared by replicas on PostgreSQL', () => {
  let a: TestServer;
  let b: RunningServer;
  let dirB: string;
  beforeAll(async () => {
    a = await testServer('postgres');
    dirB = mkdtempSync(join(tmpdir(), 'edgeplane-replica-b-'));
    b = await startServer({ host: '127.0.0.1', port: 0, dataDir: dirB, databaseUrl: a.store.databaseUrl, logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    rmSync(dirB, { recursive: true, force: true });
  });

  it('refuses claim guesses on every replica once one replica used up the budget, and claims nothing', async () => {
    const claim = async (url: string) => {
      const res = await fetch(`${url}/api/v1/pairings/${randomCode()}/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${a.admin}`, 'content-type': 'application/json' },
        body: '{}',
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
    };
    // Alternate between the replicas the way a round-robin balancer would.
    const answers = [];
    for (let i = 0; i < 12; i++) answers.push(await claim(i % 2 ? b.url : a.url));
    expect(answers.slice(0, 10).map((r) => r.body.error.code)).toEqual(Array(10).fill('PairingCodeInvalid'));
    expect(answers.slice(10).map((r) => [r.status, r.body.error.code])).toEqual([
      [429, 'RateLimited'],
      [429, 'RateLimited'],
    ]);
    const onB = await claim(b.url);
    expect(onB.status).toBe(429);
    expect(Number(onB.retryAfter)).toBeGreaterThan(0);
    expect((await a.api('GET', '/api/v1/edgehosts')).body.items).toEqual([]);
  });

  it('admits a token with 3 uses exactly 3 times when 20 devices register at once through both replicas; an unlimited token counts every use', async () => {
    const mk = async (name: string, spec: Record<string, unknown>) =>
      (await a.api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec: { autoApprove: true, ...spec } })).body.status.token as string;
    const limited = await mk('three', { maxUses: 3 });
    const unlimited = await mk('fleet', {});
    const storm = async (token: string) => {
      const devices = await Promise.all(Array.from({ length: 20 }, () => TestDevice.create()));
      const bodies = await Promise.all(devices.map((d) => d.registerBody(token)));
      return Promise.all(bodies.map((body, i) => register(i % 2 ? b.url : a.url, body)));
    };
    const hosts = async () => (await a.api('GET', '/api/v1/edgehosts?limit=500')).body.items.length as number;

    const before = await hosts();
    const answers = await storm(limited);
    expect(answers.filter((r) => r.status === 200)).toHaveLength(3);
    expect(answers.filter((r) => r.status !== 200).map((r) => [r.status, r.body.error.code])).toEqual(Array(17).fill([401, 'RegistrationTokenExhausted']));
    expect(await hosts()).toBe(before + 3);
    expect((await a.api('GET', '/api/v1/registrationtokens/three')).body.status).toMatchObject({ uses: 3, state: 'exhausted' });

    const counted = await storm(unlimited);
    expect(counted.every((r) => r.status === 200)).toBe(true);
    expect((await a.api('GET', '/api/v1/registrationtokens/fleet')).body.status.uses).toBe(20);
  });
});
