import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { list as listTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * `edgeplane logs HOST` without --source reads the agent's own log, which every host has: simulated
 * ones write agent.log in their data dir like a real device (and still log to the simulator's
 * output), so the default works there and support bundles carry logs/agent.log.
 */
describe.each(DIALECTS)('default log source on simulated hosts on %s', (dialect) => {
  let t: TestServer;
  let fleet: Fleet | undefined;
  let dir: string;
  const env = () => ({ EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CONFIG: join(dir, 'config.yaml') });

  beforeAll(async () => {
    t = await testServer(dialect);
    dir = mkdtempSync(join(tmpdir(), 'ep-logs-default-'));
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'sim' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({ server: t.url, token, sites: 1, nodesPerSite: 2, dataDir: join(dir, 'sim'), logger: pino({ level: 'silent' }) });
    await fleet.waitUntilConnected(30_000);
  }, 60_000);
  afterAll(async () => {
    await fleet?.stop();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs HOST shows the agent log of a simulated host', async () => {
    for (const agent of fleet!.agents) {
      const host = agent.hostName!;
      // The agent logs that it connected; wait until that line is in its file.
      const r = await waitFor(
        async () => {
          const out = await cli(['logs', host, '--lines', '50'], env());
          return out.code === 0 && out.stdout.includes('"msg":"connected"') ? out : undefined;
        },
        20_000,
        500,
      );
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.every((l) => l.name === 'edgeplane-agent' && l.sim)).toBe(true);
      // Each host's log is its own.
      expect(lines.find((l) => l.msg === 'connected').hostName).toBe(host);
    }
  });

  it('support bundles of a simulated host include logs/agent.log', async () => {
    const host = fleet!.agents[0].hostName!;
    const out = join(dir, 'bundle.tar.gz');
    const r = await cli(['support-bundle', host, '-o', out, '--reason', 'INC-7 sim bundle'], env());
    expect(r.code, r.out).toBe(0);
    const names: string[] = [];
    await listTar({ file: out, onReadEntry: (e) => names.push(e.path) });
    expect(names).toContain('support-bundle/logs/agent.log');
  });
});
