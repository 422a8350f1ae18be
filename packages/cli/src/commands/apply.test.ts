import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeApi, runCli, startFakeApi, tempConfigEnv } from '../test-support.js';
import { tokenManifest } from './create.js';

let api: FakeApi;
let env: Record<string, string>;

beforeAll(async () => {
  api = await startFakeApi();
});
afterAll(() => api.close());
beforeEach(() => {
  api.store.clear();
  api.requests.length = 0;
  env = { ...tempConfigEnv(), EDGEPLANE_SERVER: api.url, EDGEPLANE_TOKEN: api.token };
});

const writes = () => api.requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`);

describe('apply', () => {
  const manifest = (description: string) =>
    `apiVersion: edgeplane.io/v1\nkind: Project\nmetadata:\n  name: shops\nspec:\n  description: ${description}\n---\nkind: RegistrationToken\nmetadata: {name: installers}\nspec: {site: shop-1}\n`;

  it('creates what is missing, replaces what changed, and leaves equal resources alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apply-'));
    const file = join(dir, 'm.yaml');
    writeFileSync(file, manifest('first'));
    const created = await runCli(['apply', '-f', file], { env });
    expect(created.stderr).toBe('');
    // The token's secret is shown once, in the create answer, and apply passes it on.
    expect(created.stdout).toBe('projects/shops created\nregistrationtokens/installers created\n  token: ert_secret123\n  (shown only once: store it now)\n');
    expect(writes()).toEqual(['POST /api/v1/projects', 'POST /api/v1/registrationtokens']);

    api.requests.length = 0;
    writeFileSync(file, manifest('second'));
    const configured = await runCli(['apply', '-f', file], { env });
    // The token's spec equals the stored one once defaults (autoApprove, labels) are applied.
    expect(configured.stdout).toBe('projects/shops configured\nregistrationtokens/installers unchanged\n');
    expect(writes()).toEqual(['PUT /api/v1/projects/shops']);
    expect(api.requests.find((r) => r.method === 'PUT')!.body).toMatchObject({ kind: 'Project', spec: { description: 'second' } });
    expect(api.store.get('projects')!.get('shops')!.spec).toEqual({ description: 'second' });
  });

  it('reads JSON and Lists from stdin', async () => {
    const list = {
      apiVersion: 'edgeplane.io/v1',
      kind: 'ProjectList',
      items: [
        { kind: 'Project', metadata: { name: 'a' }, spec: {} },
        { kind: 'Project', metadata: { name: 'b' }, spec: {} },
      ],
    };
    const r = await runCli(['apply', '-f', '-'], { env, stdin: JSON.stringify(list) });
    expect(r.stdout).toBe('projects/a created\nprojects/b created\n');
  });

  it('changes nothing when a document has an unknown kind', async () => {
    const r = await runCli(['apply', '-f', '-'], { env, stdin: 'kind: Project\nmetadata: {name: a}\nspec: {}\n---\nkind: Widget\nmetadata: {name: w}\n' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown kind "Widget"/);
    expect(writes()).toEqual([]);
  });

  it('reports a failing document, goes on with the others and exits 1', async () => {
    const r = await runCli(['apply', '-f', '-'], {
      env,
      stdin: 'kind: Event\nmetadata: {name: e1}\nspec: {}\n---\nkind: Project\nmetadata: {name: ok}\nspec: {}\n',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error (MethodNotAllowed): events/e1: events cannot be created through the API\n');
    expect(r.stdout).toBe('projects/ok created\n');
  });

  it('reports an unreadable file', async () => {
    const r = await runCli(['apply', '-f', '/nonexistent/x.yaml'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: cannot read \/nonexistent\/x\.yaml/);
  });
});

describe('create token', () => {
  it('builds the RegistrationToken from flags', () => {
    const now = new Date('2025-01-01T00:00:00Z');
    expect(tokenManifest('t', { autoApprove: true, site: 'shop-1', labels: { env: 'lab' }, maxUses: 3, expiresIn: 86_400_000 }, now)).toEqual({
      apiVersion: 'edgeplane.io/v1',
      kind: 'RegistrationToken',
      metadata: { name: 't' },
      spec: { autoApprove: true, site: 'shop-1', labels: { env: 'lab' }, maxUses: 3, expiresAt: '2025-01-02T00:00:00.000Z' },
    });
  });

  it('--require-tpm asks for spec.requireTpm', () => {
    expect(tokenManifest('t', { requireTpm: true }).spec).toEqual({ autoApprove: false, requireTpm: true });
    expect(tokenManifest('t', {}).spec).toEqual({ autoApprove: false });
  });

  it('posts the token and prints the secret once, with a warning', async () => {
    const r = await runCli(
      ['create', 'token', 'installers', '--auto-approve', '--site', 'shop-1', '--labels', 'env=lab,team=edge', '--max-uses', '5', '--expires-in', '7d'],
      { env },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('registrationtokens/installers created\nToken: ert_secret123\n');
    expect(r.stderr).toMatch(/^Warning: the token secret is shown only once/);
    const body = api.requests.find((q) => q.method === 'POST')!.body as { spec: Record<string, unknown> };
    expect(body.spec).toMatchObject({ autoApprove: true, site: 'shop-1', labels: { env: 'lab', team: 'edge' }, maxUses: 5 });
    expect(Date.parse(body.spec.expiresAt as string) - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
  });

  it('prints the whole object with -o json', async () => {
    const r = await runCli(['create', 'token', 't2', '-o', 'json'], { env });
    expect(JSON.parse(r.stdout).status.token).toBe('ert_secret123');
  });

  it('refuses a bad duration before calling the server', async () => {
    const r = await runCli(['create', 'token', 't3', '--expires-in', 'soon'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is not a duration');
    expect(api.requests).toHaveLength(0);
  });
});

describe('actions', () => {
  it('approves and rejects hosts and revokes tokens', async () => {
    api.put('edgehosts', { metadata: { name: 'nuc-01' }, status: { state: 'pending-approval' } });
    api.put('registrationtokens', { metadata: { name: 'tok' }, spec: {} });
    expect((await runCli(['approve', 'host', 'nuc-01'], { env })).stdout).toBe('edgehosts/nuc-01 approved\n');
    expect((await runCli(['reject', 'hosts', 'nuc-01'], { env })).stdout).toBe('edgehosts/nuc-01 rejected\n');
    expect((await runCli(['revoke', 'token', 'tok'], { env })).stdout).toBe('registrationtokens/tok revoked\n');
    expect(writes()).toEqual(['POST /api/v1/edgehosts/nuc-01/approve', 'POST /api/v1/edgehosts/nuc-01/reject', 'POST /api/v1/registrationtokens/tok/revoke']);
  });

  it('refuses a verb the kind does not have', async () => {
    const r = await runCli(['approve', 'token', 'tok'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: registrationtokens cannot be approved; "approve" applies to: .*\bedgehosts\b/);
  });
});
