import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDevice } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

// Back-pressure on /agent/v1/register: 300 devices at once against a server that handles 1 at a time
// (plus a queue of 16). The rest are told 429 RateLimited with a Retry-After; each device retries after
// it, as the agent does (packages/agent/src/register.ts, tested in agent.test.ts), and every device ends
// up registered exactly once.
describe('registration storm', () => {
  const N = 300;
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer('sqlite', { registrationConcurrency: 1 });
  });
  afterAll(async () => t?.close());

  it('answers 429 with Retry-After when saturated and loses no registration', async () => {
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'storm' }, spec: { autoApprove: true } });
    const devices = await Promise.all(Array.from({ length: N }, () => TestDevice.create()));
    const retryAfter: number[] = [];
    const registerOne = async (d: TestDevice): Promise<string> => {
      for (;;) {
        const res = await fetch(`${t.url}/agent/v1/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(await d.registerBody(tok.body.status.token)),
        });
        const body = await res.json();
        if (res.ok) return body.hostName;
        expect(res.status).toBe(429);
        expect(body.error.code).toBe('RateLimited');
        const wait = Number(res.headers.get('retry-after'));
        retryAfter.push(wait);
        await new Promise((r) => setTimeout(r, wait * 1000));
      }
    };
    const names = await Promise.all(devices.map(registerOne));
    expect(retryAfter.length).toBeGreaterThan(0);
    expect(Math.min(...retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...retryAfter)).toBeLessThanOrEqual(3);
    expect(new Set(names).size).toBe(N);
    const hosts = await t.api('GET', '/api/v1/edgehosts?limit=1000');
    expect(hosts.body.items).toHaveLength(N);
    expect(new Set(hosts.body.items.map((h: { status: { deviceUid: string } }) => h.status.deviceUid))).toEqual(new Set(devices.map((d) => d.uid)));
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`edgeplane_registrations_total\\{result="created"\\} ${N}\\b`));
    expect(metrics).toMatch(/edgeplane_registrations_total\{result="RateLimited"\} [1-9]/);
  }, 120_000);
});
