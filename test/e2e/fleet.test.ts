import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, cli, runCli } from '../support/cli-process.js';
import { DIALECTS, type TestStore, testStore } from '../support/db.js';
import { waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';

const SITES = 50;
const OFFLINE_AFTER = 4;

describe.each(DIALECTS)(`fleet of ${SITES} simulated sites on %s`, (dialect) => {
  let store: TestStore;
  let simDir: string;
  let configFile: string;
  let server: CliProcess;
  let sim: CliProcess | undefined;
  let url: string;
  let admin: string;
  const serverArgs = () => [
    'server',
    '--host',
    '127.0.0.1',
    '--port',
    new URL(url).port,
    '--data-dir',
    store.dataDir,
    '--offline-after',
    String(OFFLINE_AFTER),
    ...(store.databaseUrl ? ['--database-url', store.databaseUrl] : []),
  ];
  const api = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', ...init.headers } });
    return res.json();
  };
  const hosts = async () => {
    const items: any[] = [];
    let cont = '';
    do {
      const page = await api(`/api/v1/edgehosts?limit=200${cont ? `&continue=${cont}` : ''}`);
      items.push(...page.items);
      cont = page.metadata.continue ?? '';
    } while (cont);
    return items;
  };
  const startSim = (token: string) => runCli(['sim', '--server', url, '--token', token, '--sites', String(SITES), '--data-dir', simDir]);

  beforeAll(async () => {
    store = await testStore(dialect);
    simDir = mkdtempSync(join(tmpdir(), 'edgeplane-sim-'));
    configFile = join(simDir, 'cli-config.yaml');
    url = `http://127.0.0.1:${await freePort()}`;
    server = runCli(serverArgs());
    // Not a terminal (a service's log): the banner names the token file, the token itself stays out of the output.
    const banner = await server.waitForOutput(/Its API token is in (\S+) \(mode 0600/);
    expect(banner[1]).toBe(join(store.dataDir, 'admin-token'));
    admin = readFileSync(banner[1], 'utf8').trim();
    expect(admin).toMatch(/^ept_/);
    expect(server.output()).not.toContain(admin);
    expect(server.output()).toContain(url.replace('127.0.0.1', '127.0.0.1'));
  });
  afterAll(async () => {
    await sim?.stop();
    await server?.stop();
    await store?.cleanup();
    rmSync(simDir, { recursive: true, force: true });
  });

  it('registers all sites, holds unapproved hosts pending, and shows them online within 10 s', async () => {
    const env = { EDGEPLANE_CONFIG: configFile };
    expect((await cli(['login', '--server', url, '--token', admin], env)).code).toBe(0);
    const created = await cli(['create', 'token', 'fleet', '--site', 'lab', '-o', 'json'], env);
    expect(created.code).toBe(0);
    const token = JSON.parse(created.stdout).status.token;
    sim = startSim(token);
    // The clock starts when the simulator process is up (not while node loads its TypeScript).
    await sim.waitForOutput(/Started \d+ simulated agents/);
    const started = Date.now();
    const all = await waitFor(async () => {
      const h = await hosts();
      return h.length === SITES && h.every((x) => x.status.connectivity === 'online') && h;
    }, 10_000);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(all.every((h: any) => h.status.state === 'pending-approval')).toBe(true);
    expect(new Set(all.map((h: any) => h.status.deviceUid)).size).toBe(SITES);

    // Approve through the CLI; the table shows them ready and online.
    for (const h of all.slice(0, 3)) expect((await cli(['approve', 'host', h.metadata.name], env)).code).toBe(0);
    const table = await cli(['get', 'hosts'], env);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/NAME\s+STATE\s+CONNECTIVITY/);
    expect(table.out.match(/\bready\s+online\b/g)?.length).toBe(3);
    const pending = all.slice(3).map((h: any) => h.metadata.name);
    await Promise.all(pending.map((n: string) => api(`/api/v1/edgehosts/${n}/approve`, { method: 'POST' })));
    const after = await hosts();
    expect(after.filter((h) => h.status.state === 'ready')).toHaveLength(SITES);
  });

  it('turns hosts offline within --offline-after when the simulator stops', async () => {
    await sim!.stop('SIGKILL');
    const t0 = Date.now();
    await waitFor(async () => (await hosts()).every((h) => h.status.connectivity === 'offline'), (OFFLINE_AFTER + 3) * 1000);
    expect(Date.now() - t0).toBeLessThan((OFFLINE_AFTER + 1) * 1000);
  });

  it('gives the same hosts again when the simulator restarts on its data dir', async () => {
    const before = (await hosts()).map((h) => h.metadata.name).sort();
    const usesBefore = (await api('/api/v1/registrationtokens/fleet')).status.uses;
    sim = startSim('eprt_not-needed-any-more');
    await waitFor(async () => (await hosts()).filter((h) => h.status.connectivity === 'online').length === SITES, 15_000);
    expect((await hosts()).map((h) => h.metadata.name).sort()).toEqual(before);
    expect((await api('/api/v1/registrationtokens/fleet')).status.uses).toBe(usesBefore);
  });

  it('reconnects every agent after a server restart without re-registering', async () => {
    const before = (await hosts()).map((h) => h.metadata.name).sort();
    await server.stop();
    server = runCli(serverArgs());
    await server.waitForOutput(/listening|admin token/i);
    await waitFor(async () => (await hosts()).filter((h) => h.status.connectivity === 'online').length === SITES, 30_000);
    const after = await hosts();
    expect(after.map((h) => h.metadata.name).sort()).toEqual(before);
    expect(after.every((h) => h.status.state === 'ready')).toBe(true);
    expect((await api('/api/v1/registrationtokens/fleet')).status.uses).toBe(SITES);
  });
});
