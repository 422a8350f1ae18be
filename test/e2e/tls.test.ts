import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverTrust } from '@edgeplane/agent/tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, cli, runCli } from '../support/cli-process.js';
import { waitFor } from '../support/device.js';
import { makeTestPki, type TestPki } from '../support/tls.js';

// A server started the way an operator would (`edgeplane server --tls-cert --tls-key`), a real agent
// process and the CLI, all trusting a CA made for this test only. The store plays no part: SQLite.
describe('TLS: HTTPS and WSS with a private CA', () => {
  let dir: string;
  let pki: TestPki;
  let server: CliProcess;
  let url: string;
  let admin: string;
  const agents: CliProcess[] = [];
  let trusted: typeof fetch;
  const api = async (path: string, init: RequestInit = {}) => {
    const res = await trusted(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', ...init.headers } });
    return { status: res.status, body: await res.json() };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeplane-tls-'));
    pki = makeTestPki(dir);
    trusted = serverTrust(pki.caFile).fetch;
    server = runCli(['server', '--port', '0', '--data-dir', join(dir, 'server'), '--tls-cert', pki.certFile, '--tls-key', pki.keyFile, '--log-level', 'warn']);
    url = (await server.waitForOutput(/API: +(https:\/\/127\.0\.0\.1:\d+)\/api\/v1/))[1];
    admin = readFileSync(join(dir, 'server', 'admin-token'), 'utf8').trim();
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a real agent trusting the CA registers over HTTPS and comes online over WSS', async () => {
    const token = (
      await api('/api/v1/registrationtokens', { method: 'POST', body: JSON.stringify({ metadata: { name: 'tls' }, spec: { autoApprove: true } }) })
    ).body.status.token;
    const agent = runCli([
      'agent',
      '--server',
      url,
      '--ca-file',
      pki.caFile,
      '--token',
      token,
      '--data-dir',
      join(dir, 'agent'),
      '--simulated',
      '--no-pairing-page',
      '--log-level',
      'warn',
    ]);
    agents.push(agent);
    const host = (await agent.waitForOutput(/Connected to https:\/\/\S+ as host (\S+) /, 45_000))[1];
    const online = await waitFor(async () => {
      const h = (await api(`/api/v1/edgehosts/${host}`)).body;
      return h.status?.connectivity === 'online' && h;
    }, 15_000);
    expect(online.metadata.name).toBe(host);
  });

  it('an agent without the CA does not register, and says the certificate is not trusted', async () => {
    const token = (
      await api('/api/v1/registrationtokens', { method: 'POST', body: JSON.stringify({ metadata: { name: 'no-ca' }, spec: { autoApprove: true } }) })
    ).body.status.token;
    const before = (await api('/api/v1/edgehosts')).body.items.length;
    const agent = runCli(['agent', '--server', url, '--token', token, '--data-dir', join(dir, 'agent-no-ca'), '--simulated', '--no-pairing-page']);
    agents.push(agent);
    await agent.waitForOutput(/registration request failed[^\n]*|"err":"fetch failed: [^"]*(certificate|self.signed)[^"]*"/i, 30_000);
    expect(agent.output()).toMatch(/certificate/i);
    await agent.stop();
    expect((await api('/api/v1/edgehosts')).body.items.length).toBe(before);
  });

  it('the CLI works with --ca-file, and without it fails with a certificate error and no stack trace', async () => {
    const ok = await cli(['get', 'hosts', '--server', url, '--token', admin, '--ca-file', pki.caFile]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/NAME/);
    // The CA can also come from the login context.
    const env = { EDGEPLANE_CONFIG: join(dir, 'cli-config.yaml') };
    expect((await cli(['login', '--server', url, '--token', admin, '--ca-file', pki.caFile], env)).code).toBe(0);
    expect(readFileSync(env.EDGEPLANE_CONFIG, 'utf8')).toContain(`caFile: ${pki.caFile}`);
    expect((await cli(['get', 'hosts'], env)).code).toBe(0);

    const bad = await cli(['get', 'hosts', '--server', url, '--token', admin]);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/TLS certificate of the Edgeplane server at https:\/\/127\.0\.0\.1:\d+ is not trusted/);
    expect(bad.out).toMatch(/--ca-file/);
    expect(bad.out).not.toMatch(/\n\s+at /);
    // A CA file that is not there is named, not a crash.
    const missing = await cli(['get', 'hosts', '--server', url, '--token', admin, '--ca-file', join(dir, 'nope.pem')]);
    expect(missing.code).not.toBe(0);
    expect(missing.out).toMatch(/cannot read CA file .*nope\.pem/);
    expect(missing.out).not.toMatch(/\n\s+at /);
  });

  it('plain HTTP to the TLS port gets no answer', async () => {
    const plain = url.replace(/^https:/, 'http:');
    const outcome = await fetch(`${plain}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
      (r) => r.status,
      () => 'refused',
    );
    expect(outcome).not.toBe(200);
    // While HTTPS answers.
    expect((await trusted(`${url}/healthz`)).status).toBe(200);
  });
});
