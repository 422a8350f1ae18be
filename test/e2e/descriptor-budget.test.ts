import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DIALECTS } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';
import { type TestServer, testServer } from '../support/server.js';

/** Agents beyond the channel cap are refused with a retryable answer; the API, the store and /metrics keep working. */
describe.each(DIALECTS)('agent channel cap on %s', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer(dialect, { maxAgentChannels: 2 });
  });
  afterAll(() => t?.close());

  it('refuses a third agent with AgentCapacityReached and Retry-After, lets a connected host reconnect', async () => {
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    const devices = await Promise.all([1, 2, 3].map(() => TestDevice.create()));
    const hosts: string[] = [];
    for (const d of devices) hosts.push((await register(t.url, await d.registerBody(token))).body.hostName);
    const first = await connect(t.url, await devices[0].connectToken(hosts[0]));
    await connect(t.url, await devices[1].connectToken(hosts[1]));
    await expect(connect(t.url, await devices[2].connectToken(hosts[2]))).rejects.toMatchObject({
      status: 503,
      body: { error: { code: 'AgentCapacityReached' } },
    });
    const tok = await devices[2].connectToken(hosts[2]);
    const retryAfter = await new Promise<string | undefined>((resolve, reject) => {
      const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/agent/v1/connect`, { headers: { authorization: `Bearer ${tok}` } });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.headers['retry-after'] as string | undefined);
        res.resume();
      });
      ws.on('open', () => reject(new Error('a channel beyond the cap was opened')));
      ws.on('error', () => {});
    });
    expect(Number(retryAfter)).toBeGreaterThan(0);
    // A host already connected may replace its channel (a reconnect does not take another slot).
    const again = await connect(t.url, await devices[0].connectToken(hosts[0]));
    await waitFor(() => first.ws.readyState === first.ws.CLOSED);
    again.ws.close();
    // The refused host stays offline; API, readiness and metrics answer.
    await waitFor(async () => (await t.api('GET', `/api/v1/edgehosts/${hosts[1]}`)).body.status.connectivity === 'online');
    expect((await t.api('GET', `/api/v1/edgehosts/${hosts[2]}`)).body.status.connectivity).not.toBe('online');
    expect(await (await fetch(`${t.url}/readyz`)).json()).toMatchObject({ status: 'ready', agentChannelLimit: 2 });
    expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/^edgeplane_agent_channel_limit 2$/m);
  });
});

describe('descriptor budget of a real server process', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Starts `edgeplane server` under prlimit and returns its readiness answer. */
  async function readyUnder(nofile: string) {
    const dir = mkdtempSync(join(tmpdir(), 'edgeplane-nofile-'));
    dirs.push(dir);
    const port = await freePort();
    const proc = spawn(
      'prlimit',
      [
        `--nofile=${nofile}`,
        '--',
        process.execPath,
        '--import',
        'tsx',
        'packages/cli/src/bin.ts',
        'server',
        '--port',
        String(port),
        '--data-dir',
        dir,
        '--log-level',
        'warn',
      ],
      {
        cwd: root,
        stdio: 'ignore',
      },
    );
    try {
      return await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).json(), 60_000, 200);
    } finally {
      proc.kill('SIGKILL');
    }
  }

  it('keeps agent channels a reserve below the open-file limit, raising the soft limit to the hard one', async () => {
    // Soft = hard = 512: nothing to raise; 200 kept in reserve.
    expect(await readyUnder('512:512')).toMatchObject({ status: 'ready', agentChannelLimit: 312 });
    // Soft 256, hard 1024: raised to 1024 at start.
    expect(await readyUnder('256:1024')).toMatchObject({ status: 'ready', agentChannelLimit: 824 });
  });
});
