import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, AgentConfig, SimDevice } from '@edgeplane/agent';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

const TIMING = { backoffBaseMs: 50, backoffCapMs: 300, slowRetryMs: 300, requestTimeoutMs: 3000, stableAfterMs: 1000, closeTimeoutMs: 200 };

/** The server drops agent events over a per-host budget; a real agent paces its offline backlog under it. */
describe.each(DIALECTS)('agent event backlog on %s', (dialect) => {
  let t: TestServer;
  let work: string;
  let agent: Agent;

  beforeAll(async () => {
    t = await testServer(dialect);
    work = mkdtempSync(join(tmpdir(), 'edgeplane-backlog-'));
  });
  afterAll(async () => {
    await agent?.stop();
    await t?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('delivers every event queued while offline, without tripping the server budget', async () => {
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    agent = new Agent({
      config: AgentConfig.parse({ server: t.url, dataDir: join(work, 'agent'), token, pairingPage: { enabled: false } }),
      device: new SimDevice({ root: join(work, 'device') }),
      logger: pino({ level: 'silent' }),
      timing: TIMING,
    });
    await agent.start();
    await waitFor(() => agent.connected, 10_000);
    const host = agent.hostName!;
    await agent.stop();

    // Offline: 60 events queue up (more than the server takes at once).
    for (let i = 0; i < 60; i++) agent.emitEvent('Normal', 'Backlog', `queued while offline #${i}`);
    await agent.start();
    const stored = async () =>
      (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${host}&limit=500`)).body.items.filter(
        (e: any) => e.spec.reason === 'Backlog',
      ).length;
    await waitFor(async () => (await stored()) > 0, 10_000);
    // Paced: not all at once...
    expect(await stored()).toBeLessThan(60);
    // ...but all of them in the end, and the server dropped none.
    await waitFor(async () => (await stored()) === 60, 40_000, 500);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(Number(/^edgeplane_agent_events_dropped_total (\d+)/m.exec(metrics)?.[1] ?? 0)).toBe(0);
  }, 60_000);
});
