import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, testServer } from '../../../../test/support/server.js';

describe('/metrics', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer('sqlite');
  });
  afterAll(async () => t?.close());

  it("passes Prometheus' own linter (promtool check metrics), traffic metrics included", async () => {
    // Some traffic first, so the labelled series (requests by route and status, durations) exist.
    await fetch(`${t.url}/healthz`);
    await t.api('GET', '/api/v1/edgehosts');
    await t.api('GET', '/api/v1/edgehosts/nope');
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toContain('edgeplane_http_requests_total{');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect({ status: check.status, out: `${check.stdout}${check.stderr}`.trim() }).toEqual({ status: 0, out: '' });
  });
});
