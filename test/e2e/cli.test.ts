import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { type TestServer, testServer } from '../support/server.js';

describe('edgeplane CLI against a real server', () => {
  let t: TestServer;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    t = await testServer('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'edgeplane-cli-'));
    env = { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') };
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies users and API tokens, printing the new secret once, and the secret works', async () => {
    const file = join(dir, 'team.yaml');
    writeFileSync(file, 'kind: User\nmetadata: {name: olga}\nspec: {role: operator}\n---\nkind: ApiToken\nmetadata: {name: olga-laptop}\nspec: {user: olga}\n');
    const r = await cli(['apply', '-f', file], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('users/olga created');
    const secret = r.stdout.match(/token: (ept_\S+)/)?.[1];
    expect(secret).toBeDefined();
    const again = await cli(['apply', '-f', file], env);
    expect(again.stdout).not.toContain('token:');
    const asOlga = await cli(['get', 'tokens', '-o', 'json'], { ...env, EDGEPLANE_TOKEN: secret! });
    expect(asOlga.code).toBe(0);
    const denied = await cli(['create', 'token', 'x'], { ...env, EDGEPLANE_TOKEN: 'ept_wrong' });
    expect(denied.code).toBe(1);
    expect(denied.out).toContain('Unauthenticated');
  });

  it('reports unknown kinds and schema errors with their codes and exit code 1', async () => {
    const unknown = await cli(['get', 'widgets'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.out).toMatch(/widgets/);
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'kind: RegistrationToken\nmetadata: {name: Bad_Name}\nspec: {maxUses: 0}\n');
    const bad = await cli(['apply', '-f', file], env);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('ValidationFailed');
  });
});
