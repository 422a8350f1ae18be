import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '@edgeplane/cli';
import { API_VERSION, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DIALECTS } from '../support/db.js';
import { connect, TestDevice, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/** Runs `edgeplane ARGS` in-process with a config of its own; returns the exit code and output. */
async function edgeplane(args: string[], env: Record<string, string> = {}) {
  const home = mkdtempSync(join(tmpdir(), 'edgeplane-version-'));
  let stdout = '';
  let stderr = '';
  try {
    const code = await main(['node', 'edgeplane', ...args], {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stdin: Readable.from(['']),
      env: { HOME: home, EDGEPLANE_CONFIG: join(home, 'config.yaml'), ...env },
    });
    return { code, stdout, stderr };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** The refusal a client of protocol `sent` gets: 400, the stable code, both versions named. */
function expectRefused(status: number, body: any, sent: string) {
  expect(status).toBe(400);
  expect(body.error.code).toBe('ProtocolVersionUnsupported');
  expect(body.error.details).toEqual({ clientVersion: sent, serverVersion: String(PROTOCOL_VERSION) });
  expect(body.error.message).toContain(`this server speaks protocol version ${PROTOCOL_VERSION}`);
  expect(body.error.message).toContain(sent);
}

describe.each(DIALECTS)('protocol versions on %s', (dialect) => {
  let t: TestServer;
  let secret: string;
  beforeAll(async () => {
    t = await testServer(dialect);
    secret = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'v' }, spec: { autoApprove: true } })).body.status.token;
  });
  afterAll(async () => t?.close());

  const api = async (method: string, path: string, version: string | undefined, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${t.admin}`, 'content-type': 'application/json' };
    if (version !== undefined) headers[PROTOCOL_VERSION_HEADER] = version;
    const res = await fetch(`${t.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any };
  };

  it('GET /api/v1/version names the server, protocol and API versions, without a token', async () => {
    const res = await fetch(`${t.url}/api/v1/version`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ serverVersion: expect.stringMatching(/^\d+\.\d+\.\d+/), protocolVersion: PROTOCOL_VERSION, apiVersion: API_VERSION });
  });

  it('refuses an API client of another protocol major before doing anything, and accepts the same major or no header', async () => {
    for (const sent of [String(PROTOCOL_VERSION + 1), '0', `${PROTOCOL_VERSION + 1}.0`, 'one', '']) {
      const r = await api('POST', '/api/v1/projects', sent, { metadata: { name: 'from-a-future-cli' }, spec: {} });
      expectRefused(r.status, r.body, sent);
    }
    const list = await api('GET', '/api/v1/projects', undefined);
    expect(list.body.items.map((p: any) => p.metadata.name)).not.toContain('from-a-future-cli');
    expect((await api('GET', '/api/v1/projects', `${PROTOCOL_VERSION}.7`)).status).toBe(200);
    expect((await api('POST', '/api/v1/projects', String(PROTOCOL_VERSION), { metadata: { name: 'same-major' }, spec: {} })).status).toBe(201);
  });

  it('refuses registration of an agent of another protocol major; no host is created', async () => {
    const device = await TestDevice.create();
    const body = await device.registerBody(secret);
    const sent = String(PROTOCOL_VERSION + 1);
    const before = (await t.api('GET', '/api/v1/edgehosts')).body.items.length;
    const refused = await api('POST', '/agent/v1/register', sent, body);
    expectRefused(refused.status, refused.body, sent);
    expect((await t.api('GET', '/api/v1/edgehosts')).body.items.length).toBe(before);
    // The same request from an agent of this protocol registers: only the version was wrong.
    const ok = await api('POST', '/agent/v1/register', String(PROTOCOL_VERSION), body);
    expect(ok.status).toBe(200);
    expect((await t.api('GET', '/api/v1/edgehosts')).body.items.length).toBe(before + 1);
  });

  it('refuses the channel of an agent of another protocol major before the upgrade; the host stays offline', async () => {
    const device = await TestDevice.create();
    const reg = await api('POST', '/agent/v1/register', String(PROTOCOL_VERSION), await device.registerBody(secret));
    const host = reg.body.hostName as string;
    const sent = String(PROTOCOL_VERSION + 1);
    const refusal = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      device.connectToken(host).then((token) => {
        const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/agent/v1/connect`, {
          headers: { authorization: `Bearer ${token}`, [PROTOCOL_VERSION_HEADER]: sent },
        });
        ws.on('open', () => reject(new Error('the channel opened')));
        // The server closes a refused upgrade's socket itself (else closing the server would hang).
        ws.on('unexpected-response', (_req, res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        ws.on('error', () => {});
      }, reject);
    });
    expectRefused(refusal.status, refusal.body, sent);
    expect((await t.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity).not.toBe('online');
    // Without the header (an agent from before the header existed) the channel opens.
    const { ws } = await connect(t.url, await device.connectToken(host));
    try {
      ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 'test-1' }));
      await waitFor(async () => (await t.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity === 'online');
    } finally {
      ws.close();
    }
  });

  it('edgeplane version prints the client and, with a server, the server, its protocol and API versions', async () => {
    const client = await edgeplane(['version']);
    expect(client.code).toBe(0);
    expect(client.stdout).toMatch(new RegExp(`^Client Version: \\d+\\.\\d+\\.\\d+\\nClient Protocol: ${PROTOCOL_VERSION}\\n$`));
    const both = await edgeplane(['version'], { EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin });
    expect(both.stderr).toBe('');
    expect(both.stdout).toContain(`Server Protocol: ${PROTOCOL_VERSION}\nAPI Version: ${API_VERSION}\n`);
    expect(both.stdout).toMatch(/Server Version: \d+\.\d+\.\d+/);
    const json = JSON.parse((await edgeplane(['version', '-o', 'json', '--server', t.url])).stdout);
    expect(json.server).toMatchObject({ protocolVersion: PROTOCOL_VERSION, apiVersion: API_VERSION });
  });
});

describe('the CLI names its protocol version', () => {
  it('sends it with every API request', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: API_VERSION, kind: 'EdgeHostList', items: [], metadata: {} }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      expect((await edgeplane(['get', 'hosts', '--server', url, '--token', 't'])).code).toBe(0);
      expect(seen).toHaveLength(1);
      expect(seen[0][PROTOCOL_VERSION_HEADER]).toBe(String(PROTOCOL_VERSION));
    } finally {
      server.close();
    }
  });
});
