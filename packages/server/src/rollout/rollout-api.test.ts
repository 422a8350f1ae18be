import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { runCli, tempConfigEnv } from '../../../cli/src/test-support.js';

const site = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'edgeplane.io/v1',
  kind: 'Site',
  metadata: { name, labels: { region: 'eu' } },
  spec,
});

describe.each(DIALECTS)('sites and rollouts API (%s)', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer(dialect);
  });
  afterAll(async () => t?.close());

  it('validates site timezones and maintenance windows with stable codes', async () => {
    const bad = await t.api('POST', '/api/v1/sites', site('bad-tz', { timezone: 'Mars/Olympus_Mons' }));
    expect(bad).toMatchObject({ status: 422, body: { error: { code: 'InvalidTimezone' } } });
    const badCron = await t.api(
      'POST',
      '/api/v1/sites',
      site('bad-cron', { timezone: 'Europe/Berlin', maintenanceWindows: [{ schedule: '0 25 * * *', duration: '2h' }] }),
    );
    expect(badCron).toMatchObject({ status: 422, body: { error: { code: 'InvalidSchedule', details: { index: 0 } } } });
    const sixFields = await t.api('POST', '/api/v1/sites', site('six', { maintenanceWindows: [{ schedule: '0 0 2 * * *', duration: '2h' }] }));
    expect(sixFields).toMatchObject({ status: 422, body: { error: { code: 'InvalidSchedule' } } });
    const badDuration = await t.api('POST', '/api/v1/sites', site('dur', { maintenanceWindows: [{ schedule: '0 2 * * *', duration: 'two hours' }] }));
    expect(badDuration).toMatchObject({ status: 400, body: { error: { code: 'ValidationFailed' } } });

    const ok = await t.api(
      'POST',
      '/api/v1/sites',
      site('berlin-1', {
        timezone: 'Europe/Berlin',
        address: 'Alexanderplatz 1, Berlin',
        coordinates: { latitude: 52.52, longitude: 13.41 },
        maintenanceWindows: [{ schedule: '0 2 * * 1-5', duration: '3h' }],
      }),
    );
    expect(ok.status).toBe(201);
    expect(typeof ok.body.status.windowOpen).toBe('boolean');
    expect(Date.parse(ok.body.status.nextWindowAt)).toBeGreaterThan(Date.now());
    const upd = await t.api('PATCH', '/api/v1/sites/berlin-1', { spec: { timezone: 'CEST+2' } }, { contentType: 'application/merge-patch+json' });
    expect(upd).toMatchObject({ status: 422, body: { error: { code: 'InvalidTimezone' } } });
    const list = await t.api('GET', '/api/v1/sites?labelSelector=region%3Deu');
    expect(list.body.items.map((s: { metadata: { name: string } }) => s.metadata.name)).toEqual(['berlin-1']);
  });

  it('refuses a rollout to a missing revision; actions check the phase; specs are immutable', async () => {
    const body = {
      metadata: { name: 'r1' },
      spec: { targets: { selector: 'fleet=shops' }, profile: { name: 'nope', revision: 3 }, strategy: { batches: [{ limit: '10%' }, { limit: '100%' }] } },
    };
    expect(await t.api('POST', '/api/v1/rollouts', body)).toMatchObject({ status: 422, body: { error: { code: 'ProfileRevisionNotFound' } } });
    const noTargets = await t.api('POST', '/api/v1/rollouts', { ...body, spec: { ...body.spec, targets: {} } });
    expect(noTargets).toMatchObject({ status: 400, body: { error: { code: 'ValidationFailed' } } });
    const badLimit = await t.api('POST', '/api/v1/rollouts', { ...body, spec: { ...body.spec, strategy: { batches: [{ limit: '150%' }] } } });
    expect(badLimit).toMatchObject({ status: 400, body: { error: { code: 'ValidationFailed' } } });
    expect((await t.api('POST', '/api/v1/rollouts/nope/pause')).status).toBe(404);
  });

  it('the CLI applies, lists and describes sites, and runs rollout actions', async () => {
    const env = { ...tempConfigEnv(), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    const file = join(mkdtempSync(join(tmpdir(), 'site-')), 'site.yaml');
    writeFileSync(
      file,
      'apiVersion: edgeplane.io/v1\nkind: Site\nmetadata: {name: tokyo-3, labels: {region: ap}}\nspec:\n  timezone: Asia/Tokyo\n  maintenanceWindows:\n  - {schedule: "30 1 * * *", duration: 90m}\n',
    );
    expect((await runCli(['apply', '-f', file], { env })).stdout).toBe('sites/tokyo-3 created\n');
    const got = await runCli(['get', 'sites'], { env });
    expect(got.stdout).toMatch(/TIMEZONE[\s\S]*tokyo-3\s+Asia\/Tokyo/);
    expect((await runCli(['describe', 'site', 'tokyo-3'], { env })).stdout).toContain('30 1 * * *');
    const paused = await runCli(['pause', 'rollout', 'nope'], { env });
    expect(paused.code).not.toBe(0);
    expect(paused.stderr).toContain('NotFound');
  });
});
