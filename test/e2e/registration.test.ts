import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Agent, AgentConfig, type AgentConfigInput, loadAgentConfigFromSeed, SIM_DEVICE_UID_FILE, SimDevice } from '@edgeplane/agent';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cli, runCli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';
import { type TestServer, testServer } from '../support/server.js';

const TIMING = { backoffBaseMs: 50, backoffCapMs: 300, slowRetryMs: 300, requestTimeoutMs: 3000, stableAfterMs: 1000, closeTimeoutMs: 200 };

/** Collects an agent's JSON log lines, so tests can assert what the agent told its operator. */
function captureLog() {
  const lines: any[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** A simulated device with a chosen UID (SimDevice keeps its UID in a file under its sandbox root). */
function simDevice(root: string, uid?: string): SimDevice {
  if (uid) {
    mkdirSync(join(root, 'etc/edgeplane-sim'), { recursive: true });
    writeFileSync(join(root, SIM_DEVICE_UID_FILE), `${uid}\n`);
  }
  return new SimDevice({ root });
}

describe.each(DIALECTS)('registration modes end to end on %s', (dialect) => {
  let t: TestServer;
  let work: string;
  let env: Record<string, string>;
  const agents: Agent[] = [];
  const host = async (name: string) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;
  /** The host once the server shows it online (connectivity is written just after the welcome). */
  const onlineHost = (name: string) =>
    waitFor(async () => {
      const h = await host(name);
      return h.status?.connectivity === 'online' && h;
    }, 10_000);
  const startAgent = async (name: string, config: Partial<AgentConfigInput>, uid?: string) => {
    const dataDir = join(work, name);
    const log = captureLog();
    const agent = new Agent({
      config: AgentConfig.parse({ server: t.url, dataDir, logLevel: 'info', ...config, pairingPage: { enabled: false } }),
      device: simDevice(join(dataDir, 'device'), uid),
      logger: log.logger,
      timing: TIMING,
      pairingPollWaitSeconds: 2,
    });
    const pairings: { code: string }[] = [];
    agent.on('pairing', (info) => info && pairings.push(info));
    agents.push(agent);
    await agent.start();
    return { agent, log, pairings };
  };

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 3, heartbeatIntervalSeconds: 0.5 });
    work = mkdtempSync(join(tmpdir(), 'edgeplane-reg-'));
    env = { EDGEPLANE_CONFIG: join(work, 'cli.yaml'), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    await t.api('POST', '/api/v1/projects', { metadata: { name: 'stores' }, spec: {} });
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
  });
  afterAll(async () => {
    await t?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('builds a seed ISO with the CLI; an agent started from its contents registers and comes online', async () => {
    const created = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'shop-iso' }, spec: { autoApprove: true, site: 'shop-1' } });
    const iso = join(work, 'seed.iso');
    const r = await cli(
      ['installer', 'seed-iso', '--token', 'shop-iso', '--token-secret', created.body.status.token, '--labels', 'rack=4', '--ntp', 'pool.ntp.org', '-o', iso],
      env,
    );
    expect(r.code, r.out).toBe(0);
    // Read back with xorriso, as an operator would check it.
    expect(execFileSync('xorriso', ['-indev', iso, '-pvd_info'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toMatch(/Volume Id\s*:\s*cidata/);
    const out = join(work, 'seed-out');
    execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/', out], { stdio: 'ignore' });
    expect(readFileSync(join(out, 'user-data'), 'utf8')).toMatch(/^#cloud-config\n/);
    expect(readFileSync(join(out, 'meta-data'), 'utf8')).toMatch(/^instance-id: /);
    // The agent reads the ISO as it is (mount-free) and registers with the token inside.
    const config = await loadAgentConfigFromSeed(iso, { dataDir: join(work, 'iso-agent') });
    expect(config.token).toBe(created.body.status.token);
    const agent = new Agent({ config, device: simDevice(join(work, 'iso-agent', 'device')), logger: pino({ level: 'silent' }), timing: TIMING });
    agents.push(agent);
    await agent.start();
    await waitFor(() => agent.connected, 10_000);
    const h = await onlineHost(agent.hostName!);
    expect(h.status).toMatchObject({ state: 'ready', connectivity: 'online', registeredVia: 'token' });
    expect(h.metadata.labels).toEqual({ rack: '4' });
    expect(h.spec.site).toBe('shop-1');
  });

  it('pre-registers 5 devices from a CSV; each takes exactly its host and labels; an unknown sixth is refused', async () => {
    const uids = [1, 2, 3, 4, 5].map((i) => `4c4c4544-0000-1000-8000-00000000000${i}`);
    const csv = join(work, 'hosts.csv');
    writeFileSync(csv, `deviceUid,site,labels\n${uids.map((u, i) => `${u},shop-${i + 1},"slot=${i + 1};tier=edge"`).join('\n')}\n`);
    const imported = await cli(['hosts', 'import', '--file', csv, '--project', 'stores', '-o', 'json'], env);
    expect(imported.code, imported.out).toBe(0);
    const keys = JSON.parse(imported.stdout) as { name: string; deviceUid: string; pairingKey: string }[];
    expect(keys).toHaveLength(5);
    const listed = await t.api('GET', '/api/v1/edgehosts?labelSelector=tier%3Dedge');
    expect(listed.body.items.map((h: any) => h.status.state)).toEqual(Array(5).fill('pre-registered'));

    const started = await Promise.all(keys.map((k, i) => startAgent(`pre-${i}`, { pairingKey: k.pairingKey }, k.deviceUid)));
    await waitFor(() => started.every((s) => s.agent.connected), 15_000);
    for (const [i, { agent }] of started.entries()) {
      expect(agent.hostName).toBe(keys[i].name);
      const h = await onlineHost(keys[i].name);
      expect(h.metadata).toMatchObject({ project: 'stores', labels: { slot: String(i + 1), tier: 'edge' } });
      expect(h.spec.site).toBe(`shop-${i + 1}`);
      expect(h.status).toMatchObject({ state: 'ready', connectivity: 'online', registeredVia: 'pairing-key', deviceUid: keys[i].deviceUid });
    }
    // A sixth device with an unknown UID, holding a pre-registration-only token, is refused with a clear code.
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'known-only' }, spec: { autoApprove: true, preRegisteredOnly: true } });
    const sixth = await startAgent('pre-6', { token: tok.body.status.token }, '4c4c4544-0000-1000-8000-000000000099');
    const refusal = await waitFor(() => sixth.log.lines.find((l) => /registration refused/.test(l.msg)), 10_000);
    expect(refusal).toMatchObject({ code: 'DeviceNotPreRegistered', status: 403 });
    expect((await t.api('GET', '/api/v1/edgehosts?labelSelector=tier%3Dedge')).body.items).toHaveLength(5);
    expect((await t.api('GET', '/api/v1/edgehosts?limit=1000')).body.items.some((h: any) => h.status.deviceUid.endsWith('099'))).toBe(false);
  });

  it('pairs an agent without a token: code on its terminal and local page, claimed through the CLI', async () => {
    const port = await freePort();
    const dataDir = join(work, 'pairing-agent');
    const agent = runCli([
      'agent',
      '--server',
      t.url,
      '--data-dir',
      dataDir,
      '--simulated',
      '--pairing-port',
      String(port),
      '--pairing-listen',
      '127.0.0.1',
      '--log-level',
      'warn',
    ]);
    try {
      const [, code] = await agent.waitForOutput(/Pairing code: ([2-9A-HJ-NP-Z]{8})/, 20_000);
      expect(agent.output()).toContain(`${t.url}/claim?code=${code}`);
      // The terminal QR is drawn with block characters.
      expect(agent.output()).toMatch(/[▀▄█]{10}/);
      await agent.waitForOutput(/Pairing page: http:\/\/127\.0\.0\.1:/);
      const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
      expect(page).toContain(code);
      expect(page).toContain('<svg');
      expect(await (await fetch(`http://127.0.0.1:${port}/pairing.json`)).json()).toMatchObject({ state: 'pending', code });

      const claimed = await cli(['claim', code, '--project', 'stores', '--site', 'shop-9', '--labels', 'tier=pos,row=3'], env);
      expect(claimed.code, claimed.out).toBe(0);
      const hostName = claimed.stdout.match(/host (edge-[0-9a-f]{12})/)![1];
      await agent.waitForOutput(new RegExp(`Connected to .* as host ${hostName} \\(ready\\)`), 20_000);
      const h = await onlineHost(hostName);
      expect(h.metadata).toMatchObject({ project: 'stores', labels: { tier: 'pos', row: '3' } });
      expect(h.spec.site).toBe('shop-9');
      expect(h.status.registeredVia).toBe('pairing');
      // Single-use: the same code again is refused, through the CLI too.
      const again = await cli(['claim', code], env);
      expect(again.code).toBe(1);
      expect(again.out).toContain('Error (PairingCodeUsed)');
    } finally {
      await agent.stop();
    }
  });

  it('refuses an expired code, and expiry never disconnects a registered device', async () => {
    // A paired, registered device stays connected while its (used) code expires and others fail.
    const paired = await startAgent('paired', {});
    const info = await waitFor(() => paired.pairings[0], 10_000);
    expect((await t.api('POST', `/api/v1/pairings/${info.code}/claim`, {})).status).toBe(200);
    await waitFor(() => paired.agent.connected, 10_000);

    const waiting = await startAgent('waiting', {});
    const pending = await waitFor(() => waiting.pairings[0], 10_000);
    // Let the code run out: move its expiry into the past, as 15 minutes would.
    await expirePairings(t, dialect);
    const expired = await t.api('POST', `/api/v1/pairings/${pending.code}/claim`, {});
    expect(expired.status).toBe(410);
    expect(expired.body.error.code).toBe('PairingCodeExpired');
    // The waiting agent notices and shows a fresh code.
    const fresh = await waitFor(() => waiting.pairings[1], 10_000);
    expect(fresh.code).not.toBe(pending.code);
    expect(paired.agent.connected).toBe(true);
    await onlineHost(paired.agent.hostName!);
  });

  it('re-install: same UID with a new key is a re-registration request; approval retires the old key; revoking the token disconnects nobody', async () => {
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'reinstall' }, spec: { autoApprove: true } });
    const uid = '4c4c4544-0000-1000-8000-0000000000aa';
    const first = await startAgent('reinstall-1', { token: tok.body.status.token }, uid);
    await waitFor(() => first.agent.connected, 10_000);
    const name = first.agent.hostName!;
    // Revoking the token never cuts off the registered device.
    expect((await t.api('POST', '/api/v1/registrationtokens/reinstall/revoke')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 700));
    expect(first.agent.connected).toBe(true);
    expect((await host(name)).status.connectivity).toBe('online');

    // The device is re-installed: same UID, new data dir, new key; it pairs at the edge (the token is revoked).
    const second = await startAgent('reinstall-2', {}, uid);
    const code = await waitFor(() => second.pairings[0], 10_000);
    expect((await t.api('POST', `/api/v1/pairings/${code.code}/claim`, { labels: { ignored: 'x' } })).status).toBe(200);
    await waitFor(() => second.agent.hostName === name, 10_000);
    // The request waits for an operator: the host keeps its state, key and connection, and the new
    // key opens no channel (its agent is told why and retries slowly).
    const h = await host(name);
    expect(h.status.state).toBe('ready');
    expect(h.status.connectivity).toBe('online');
    expect(h.status.conditions.map((c: any) => c.type)).toContain('KeyChangePending');
    await waitFor(() => second.log.lines.some((l) => l.errorCode === 'DeviceKeyPending'), 10_000);
    expect(second.agent.connected).toBe(false);
    expect(first.agent.connected).toBe(true);
    expect((await t.api('GET', '/api/v1/edgehosts?limit=1000')).body.items.filter((x: any) => x.status.deviceUid === uid)).toHaveLength(1);
    // The operator sees the request with the device's inventory before deciding.
    const wide = await cli(['get', 'hosts', name, '-o', 'wide'], env);
    expect(wide.stdout).toMatch(/STATE.*DEVICE UID.*HOSTNAME.*MODEL.*CPUS.*MEMORY/);
    expect(wide.stdout).toMatch(new RegExp(`${name}\\s+ready.*${uid}\\s+sim-`));
    const described = await cli(['describe', 'host', name], env);
    expect(described.stdout).toContain('KeyChangePending');
    expect(described.stdout).toMatch(/inventory:[\s\S]*productName/);

    // The device's log names the fingerprint the operator checks before approving that very key.
    const pendingLine = second.log.lines.find((l) => l.errorCode === 'DeviceKeyPending');
    expect(pendingLine.msg).toContain(h.status.pendingKeyFingerprint);
    const approvedCli = await cli(['approve-key', 'host', name, '--fingerprint', h.status.pendingKeyFingerprint.slice(0, 16)], env);
    expect(approvedCli.code, approvedCli.out).toBe(0);
    expect((await host(name)).status.keyFingerprint).toBe(h.status.pendingKeyFingerprint);
    await waitFor(() => second.agent.connected && second.agent.state === 'ready', 10_000);
    // The old key can no longer connect: its agent is dropped and refused from now on.
    await waitFor(() => first.log.lines.some((l) => l.errorCode === 'ConnectTokenInvalid'), 10_000);
    expect(first.agent.connected).toBe(false);
    // Rejecting keeps the record, and the device is told and says so in its log.
    expect((await t.api('POST', `/api/v1/edgehosts/${name}/reject`)).body.status.state).toBe('rejected');
    const told = await waitFor(() => second.log.lines.find((l) => /rejected/.test(l.msg)), 10_000);
    expect(told.level).toBe(50);
    expect(second.agent.state).toBe('rejected');
  });

  // Last: it uses up this server's claim budget for the test's source address.
  it('rate-limits 20 wrong claims in a row', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    const letters = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${t.url}/api/v1/pairings/WRNGC${letters.slice(i, i + 3).padEnd(3, 'Z')}/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.admin}`, 'content-type': 'application/json' },
        body: '{}',
      });
      const code = ((await res.json()) as any).error?.code;
      statuses.push(res.status);
      expect([res.status, code], `claim ${i + 1}; statuses so far ${statuses.join(' ')}`).toEqual(
        res.status === 429 ? [429, 'RateLimited'] : [404, 'PairingCodeInvalid'],
      );
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
    }
    expect(statuses[0], statuses.join(' ')).toBe(404);
    expect(statuses.slice(-5), statuses.join(' ')).toEqual(Array(5).fill(429));
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });
});

/** Simulates the passing of a pairing code's 15 minutes by moving every expiry into the past. */
async function expirePairings(t: TestServer, dialect: string): Promise<void> {
  const { openStore } = await import('@edgeplane/server');
  const store = openStore({ dataDir: t.store.dataDir, databaseUrl: dialect === 'postgres' ? t.store.databaseUrl : undefined });
  try {
    await store.db
      .updateTable('pairings')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('state', '=', 'pending')
      .execute();
  } finally {
    await store.close();
  }
}
