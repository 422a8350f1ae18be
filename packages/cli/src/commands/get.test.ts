import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeApi, runCli, startFakeApi, tempConfigEnv } from '../test-support.js';

let api: FakeApi;
let env: Record<string, string>;

beforeAll(async () => {
  api = await startFakeApi({ pageSize: 2 });
});
afterAll(() => api.close());
beforeEach(() => {
  api.store.clear();
  api.requests.length = 0;
  env = { ...tempConfigEnv(), EDGEPLANE_SERVER: api.url, EDGEPLANE_TOKEN: api.token };
  for (const name of ['p1', 'p2', 'p3', 'p4', 'p5'])
    api.put('projects', { metadata: { name, labels: { tier: name === 'p3' ? 'gold' : 'std' } }, spec: { description: `project ${name}` } });
});

const lists = () => api.requests.filter((r) => r.method === 'GET' && r.path === '/api/v1/projects');

describe('get', () => {
  it('follows continue to list every page', async () => {
    const r = await runCli(['get', 'projects'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^NAME\s+DESCRIPTION\s+CREATED$/);
    expect(r.stdout).toMatch(/^p5\s+project p5\s+\d+s$/m);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(6);
    expect(lists().map((q) => q.query.continue)).toEqual([undefined, 'p2', 'p4']);
  });

  it('fetches all pages for json and yaml too', async () => {
    const json = await runCli(['get', 'proj', '-o', 'json'], { env });
    expect(JSON.parse(json.stdout).items).toHaveLength(5);
    const yaml = await runCli(['get', 'project', '-o', 'yaml'], { env });
    expect(yaml.stdout).toContain('kind: ProjectList');
    expect(yaml.stdout.match(/^ {2}- apiVersion/gm)).toHaveLength(5);
  });

  it('with --limit shows one page and the continue token; --all fetches the rest', async () => {
    const one = await runCli(['get', 'projects', '--limit', '3'], { env });
    expect(one.stdout.trimEnd().split('\n')).toHaveLength(4);
    expect(one.stderr).toContain('--continue p3');
    const next = await runCli(['get', 'projects', '--limit', '3', '--continue', 'p3'], { env });
    expect(next.stdout).toMatch(/^p4/m);
    expect(next.stdout).toMatch(/^p5/m);
    api.requests.length = 0;
    const all = await runCli(['get', 'projects', '--limit', '3', '--all', '-o', 'name'], { env });
    expect(all.stdout).toBe('projects/p1\nprojects/p2\nprojects/p3\nprojects/p4\nprojects/p5\n');
    expect(lists().map((q) => q.query.limit)).toEqual(['3', '3']);
  });

  it('passes the label selector', async () => {
    const r = await runCli(['get', 'projects', '-l', 'tier=gold', '-o', 'name'], { env });
    expect(r.stdout).toBe('projects/p3\n');
    expect(lists()[0].query.labelSelector).toBe('tier=gold');
  });

  it('shows one resource by name', async () => {
    const r = await runCli(['get', 'project', 'p2', '-o', 'json'], { env });
    expect(JSON.parse(r.stdout).metadata.name).toBe('p2');
  });

  it('says so when there is nothing', async () => {
    const r = await runCli(['get', 'hosts'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('No edgehosts found.\n');
  });

  it('fails on an unknown kind, listing the known ones', async () => {
    const r = await runCli(['get', 'widgets'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: unknown kind "widgets"; known kinds: edgehosts \(host, hosts, eh\), registrationtokens \(token, tokens, rt\)/);
    expect(api.requests).toHaveLength(0);
  });

  it('fails on an unknown output format', async () => {
    const r = await runCli(['get', 'hosts', '-o', 'xml'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/xml.*(invalid|Allowed choices)/i);
  });
});

describe('errors', () => {
  it('renders API error bodies with their code and exits 1', async () => {
    const r = await runCli(['get', 'project', 'nope'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error (NotFound): Project nope not found\n');
  });

  it('renders 401 as Unauthenticated', async () => {
    const r = await runCli(['get', 'projects'], { env: { ...env, EDGEPLANE_TOKEN: 'wrong' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error (Unauthenticated): missing or invalid bearer token\n');
  });

  it('lists validation issues under the message', async () => {
    const r = await runCli(['create', 'token', 'Bad_Name'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Error (ValidationFailed): invalid request: metadata.name: invalid\n  metadata.name: must be lower-case\n');
  });

  it('names the server when it cannot be reached', async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const r = await runCli(['get', 'hosts'], { env: { ...env, EDGEPLANE_SERVER: `http://127.0.0.1:${port}` } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `Error: cannot reach the Edgeplane server at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port} (is it running, and is the URL right?)\n`,
    );
  });

  it('explains how to configure a server when none is set', async () => {
    const r = await runCli(['get', 'hosts'], { env: tempConfigEnv() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('edgeplane login');
  });
});

describe('describe and delete', () => {
  it('describes a resource with its events, filtered client-side', async () => {
    const event = (name: string, object: string, reason: string) =>
      api.put('events', {
        metadata: { name },
        spec: { type: 'Normal', reason, message: `${reason} msg`, involvedObject: { kind: 'Project', name: object }, source: 'server' },
        status: { count: 1, firstTimestamp: new Date().toISOString(), lastTimestamp: new Date().toISOString() },
      });
    event('e1', 'p1', 'Created');
    event('e2', 'p2', 'Other');
    event('e3', 'p1', 'Updated');
    const r = await runCli(['describe', 'project', 'p1'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Name:\s+p1$/m);
    expect(r.stdout).toMatch(/^Spec:\n {2}description: project p1$/m);
    expect(r.stdout).toContain('Created msg');
    expect(r.stdout).toContain('Updated msg');
    expect(r.stdout).not.toContain('Other msg');
  });

  it('deletes by name', async () => {
    const r = await runCli(['delete', 'project', 'p1', 'p2'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('projects/p1 deleted\nprojects/p2 deleted\n');
    expect(api.store.get('projects')!.has('p1')).toBe(false);
    const again = await runCli(['delete', 'project', 'p1'], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('Error (NotFound)');
  });
});
