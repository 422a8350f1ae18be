import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli } from '../support/cli-process.js';
import { waitFor } from '../support/device.js';
import freePort from '../support/free-port.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';

/** `kill -9` of a real `edgeplane server` process while a 3-node cluster provisions. */
describe('server killed mid-provisioning', () => {
  let registry: TestRegistry;
  let server: CliProcess;
  let fleet: Fleet | undefined;
  let dir: string;
  let url: string;
  let admin: string;
  let digest: string;
  const args = () => ['server', '--host', '127.0.0.1', '--port', new URL(url).port, '--data-dir', join(dir, 'server'), '--log-level', 'warn'];
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-kill-'));
    registry = await startRegistry();
    digest = await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    url = `http://127.0.0.1:${await freePort()}`;
    server = runCli(args());
    // Not a terminal: the banner names the token file instead of printing the token.
    admin = readFileSync((await server.waitForOutput(/Its API token is in (\S+) \(mode 0600/))[1], 'utf8').trim();
  });
  afterAll(async () => {
    await fleet?.stop();
    await server?.stop('SIGKILL');
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('ends Running with the first node initialized exactly once', async () => {
    const token = (await api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: url,
      token,
      sites: 3,
      dataDir: join(dir, 'sim'),
      logger: pino({ level: 'silent' }),
      timing: { backoffBaseMs: 50, backoffCapMs: 500 },
    });
    const hosts: string[] = await waitFor(async () => {
      const items = (await api('GET', '/api/v1/edgehosts')).body.items;
      return items.filter((h: any) => h.status.connectivity === 'online').length === 3 && items.map((h: any) => h.metadata.name);
    }, 20_000);
    expect(
      (
        await api('POST', '/api/v1/clusterprofiles', {
          metadata: { name: 'p' },
          spec: { layers: { os: { image: `${registry.host}/edge/os:1.0.0` }, kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' } } },
        })
      ).status,
    ).toBe(201);
    const created = await api('POST', '/api/v1/clusters', {
      metadata: { name: 'shop' },
      spec: { type: 'native', profile: { name: 'p', revision: 1 }, nodes: hosts.map((h, i) => ({ host: h, role: i === 0 ? 'control-plane' : 'worker' })) },
    });
    expect(created.status).toBe(201);
    const events = async () =>
      (await api('GET', '/api/v1/events?fieldSelector=involvedObject.kind=Cluster,involvedObject.name=shop')).body.items.map((e: any) => e.spec.reason);
    await waitFor(async () => (await events()).includes('InitializingControlPlane'), 20_000, 20);
    const before = (await api('GET', '/api/v1/clusters/shop')).body.status;
    await server.stop('SIGKILL');
    // The kill landed while the cluster was still provisioning (not every node joined yet).
    expect(before.phase).toBe('Provisioning');
    server = runCli(args());
    await server.waitForOutput(/Edgeplane server is running/);
    const running = await waitFor(async () => {
      const cl = (await api('GET', '/api/v1/clusters/shop')).body;
      return cl.status?.phase === 'Running' && cl;
    }, 60_000);
    expect(running.status.nodes.map((n: any) => [n.ready, n.osImageDigest])).toEqual(hosts.map(() => [true, digest]));
    expect((await events()).filter((r: string) => r === 'InitializingControlPlane')).toHaveLength(1);
  });
});
