import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type FakeApi, runCli, startFakeApi, tempConfigEnv } from '../test-support.js';

let api: FakeApi;
beforeAll(async () => {
  api = await startFakeApi();
});
afterAll(() => api.close());

describe('login', () => {
  it('checks the token, saves a 0600 context and uses it afterwards', async () => {
    const env = tempConfigEnv();
    const r = await runCli(['login', '--server', api.url, '--token', api.token, '--context', 'lab'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Context "lab" saved');
    expect(api.requests.at(-1)).toMatchObject({ method: 'GET', path: '/api/v1/projects' });
    expect(statSync(env.EDGEPLANE_CONFIG).mode & 0o777).toBe(0o600);
    expect(parse(readFileSync(env.EDGEPLANE_CONFIG, 'utf8'))).toEqual({
      currentContext: 'lab',
      contexts: [{ name: 'lab', server: api.url, token: api.token }],
    });

    const get = await runCli(['get', 'projects', '-o', 'json'], { env });
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout).kind).toBe('ProjectList');
  });

  it('refuses a token the server does not accept and saves nothing', async () => {
    const env = tempConfigEnv();
    const r = await runCli(['login', '--server', api.url, '--token', 'wrong'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error \(Unauthenticated\): the server at http:\/\/127\.0\.0\.1:\d+ does not accept this token/);
    expect(() => statSync(env.EDGEPLANE_CONFIG)).toThrow();
  });

  it('manages contexts', async () => {
    const env = tempConfigEnv();
    await runCli(['login', '--server', api.url, '--token', api.token, '--context', 'one'], { env });
    await runCli(['login', '--server', `${api.url}/`, '--token', api.token], { env });
    const list = await runCli(['config', 'get-contexts'], { env });
    expect(list.stdout).toMatch(/^CURRENT\s+NAME\s+SERVER$/m);
    expect(list.stdout).toMatch(/^\*\s+127\.0\.0\.1-\d+\s+http/m);
    expect((await runCli(['config', 'use-context', 'one'], { env })).code).toBe(0);
    expect((await runCli(['config', 'current-context'], { env })).stdout).toBe('one\n');
    const bad = await runCli(['config', 'use-context', 'nope'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('context "nope" not found');
  });
});
