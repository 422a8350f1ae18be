import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudConfig, PAIRING_CODE_ALPHABET } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DIALECTS } from '../support/db.js';
import { connect, register, TestDevice } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

async function startPairing(t: TestServer, d: TestDevice) {
  const res = await fetch(`${t.url}/agent/v1/pairings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(await d.pairingStartBody()),
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe.each(DIALECTS)('registration modes through the API on %s', (dialect) => {
  let t: TestServer;
  let autoSecret: string;
  let preOnlySecret: string;

  beforeAll(async () => {
    t = await testServer(dialect);
    autoSecret = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true, site: 'shop-1' } })).body.status
      .token;
    preOnlySecret = (
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'pre-only' }, spec: { autoApprove: true, preRegisteredOnly: true } })
    ).body.status.token;
    await t.api('POST', '/api/v1/projects', { metadata: { name: 'stores' }, spec: {} });
  });
  afterAll(async () => t?.close());

  it('pre-registers hosts by device UID: derived names, one-time pairing keys, exact host and labels', async () => {
    const devices = await Promise.all([1, 2, 3].map(() => TestDevice.create()));
    const keys: string[] = [];
    for (const [i, d] of devices.entries()) {
      const r = await t.api('POST', '/api/v1/edgehosts', { metadata: { labels: { slot: String(i) } }, spec: { deviceUid: d.uid, site: 'shop-9' } });
      expect(r.status).toBe(201);
      expect(r.body.metadata.name).toMatch(/^edge-[0-9a-f]{12}$/);
      expect(r.body.status).toMatchObject({ state: 'pre-registered', deviceUid: d.uid, keyFingerprint: '' });
      expect(r.body.status.pairingKey).toMatch(/^eppk_/);
      keys.push(r.body.status.pairingKey);
      // Shown once: a read never returns it.
      expect((await t.api('GET', `/api/v1/edgehosts/${r.body.metadata.name}`)).body.status.pairingKey).toBeUndefined();
    }
    expect((await t.api('POST', '/api/v1/edgehosts', { metadata: {}, spec: { deviceUid: devices[0].uid } })).body.error.code).toBe('AlreadyExists');
    // Wrong key for the UID, and the key of another device, are refused.
    expect((await register(t.url, await devices[0].registerBody('', { token: undefined, pairingKey: keys[1] }))).body.error.code).toBe('PairingKeyInvalid');
    const r0 = await register(t.url, await devices[0].registerBody('', { token: undefined, pairingKey: keys[0] }));
    expect(r0.status).toBe(200);
    expect(r0.body.state).toBe('ready');
    const h0 = (await t.api('GET', `/api/v1/edgehosts/${r0.body.hostName}`)).body;
    expect(h0.metadata.labels).toEqual({ slot: '0' });
    expect(h0.spec.site).toBe('shop-9');
    expect(h0.status).toMatchObject({ registeredVia: 'pairing-key', state: 'ready' });
    // One-time: another key presenting the used pairing key gets nothing.
    const thief = await devices[0].withNewKey();
    expect((await register(t.url, await thief.registerBody('', { token: undefined, pairingKey: keys[0] }))).body.error.code).toBe('PairingKeyInvalid');
    // A pre-registered device may also come with a pre-registration-only token; an unknown one may not.
    const r1 = await register(t.url, await devices[1].registerBody(preOnlySecret));
    expect(r1.body.hostName).toBe((await t.api('GET', `/api/v1/edgehosts?labelSelector=slot%3D1`)).body.items[0].metadata.name);
    const stranger = await TestDevice.create();
    const refused = await register(t.url, await stranger.registerBody(preOnlySecret));
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('DeviceNotPreRegistered');
    // Exactly one credential.
    expect((await register(t.url, await stranger.registerBody(autoSecret, { pairingKey: keys[2] }))).body.error.code).toBe('ValidationFailed');
  });

  it('denies a device UID: no registration, no pairing, and a connected host is cut off', async () => {
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(autoSecret));
    const { ws } = await connect(t.url, await d.connectToken(r.body.hostName));
    const closed = new Promise<number>((res) => ws.on('close', (code) => res(code)));
    expect(
      (await t.api('PATCH', `/api/v1/edgehosts/${r.body.hostName}`, { spec: { denied: true } }, { contentType: 'application/merge-patch+json' })).status,
    ).toBe(200);
    await closed;
    await expect(connect(t.url, await d.connectToken(r.body.hostName))).rejects.toMatchObject({ status: 403, body: { error: { code: 'DeviceDenied' } } });
    const again = await d.withNewKey();
    expect((await register(t.url, await again.registerBody(autoSecret))).body.error.code).toBe('DeviceDenied');
    expect((await startPairing(t, again)).body.error.code).toBe('DeviceDenied');
    // Denying an unknown UID ahead of time: pre-register it with spec.denied.
    const bad = await TestDevice.create();
    const denied = await t.api('POST', '/api/v1/edgehosts', { metadata: {}, spec: { deviceUid: bad.uid, denied: true } });
    expect(denied.status).toBe(201);
    expect(denied.body.status.pairingKey).toBeUndefined();
    expect((await register(t.url, await bad.registerBody(autoSecret))).body.error.code).toBe('DeviceDenied');
    // Undo, as docs/registration-approval.md says: merge-patch denied to null; the device connects again.
    const undo = await t.api('PATCH', `/api/v1/edgehosts/${r.body.hostName}`, { spec: { denied: null } }, { contentType: 'application/merge-patch+json' });
    expect(undo.status).toBe(200);
    const { ws: back } = await connect(t.url, await d.connectToken(r.body.hostName));
    back.close();
    // A UID denied ahead of time has no key to trust: deleting its record lets the device register afresh.
    expect((await t.api('DELETE', `/api/v1/edgehosts/${denied.body.metadata.name}`)).status).toBe(200);
    expect((await register(t.url, await bad.registerBody(autoSecret))).status).toBe(200);
  });

  it('pairs a device with a code an operator claims; codes are single-use and wrong codes are refused', async () => {
    const d = await TestDevice.create();
    const s = await startPairing(t, d);
    expect(s.status).toBe(201);
    expect(s.body.code).toMatch(new RegExp(`^[${PAIRING_CODE_ALPHABET}]{8}$`));
    const poll = async (wait = 0) =>
      (await fetch(`${t.url}/agent/v1/pairings/${s.body.id}?waitSeconds=${wait}`, { headers: { authorization: `Bearer ${s.body.pollSecret}` } })).json();
    expect((await poll()).state).toBe('pending');
    // Registering before the claim is refused.
    expect((await register(t.url, await d.registerBody('', { token: undefined, pairing: { id: s.body.id, secret: s.body.pollSecret } }))).body.error.code).toBe(
      'PairingInvalid',
    );
    const waiting = poll(5);
    const claim = await t.api('POST', `/api/v1/pairings/${s.body.code.toLowerCase()}/claim`, { project: 'stores', site: 'shop-2', labels: { tier: 'edge' } });
    expect(claim.status).toBe(200);
    expect(claim.body).toMatchObject({ state: 'claimed', project: 'stores', deviceUid: d.uid, labels: { tier: 'edge' } });
    expect(await waiting).toMatchObject({ state: 'claimed', project: 'stores' });
    expect((await t.api('POST', `/api/v1/pairings/${s.body.code}/claim`, {})).body.error.code).toBe('PairingCodeUsed');
    // Only the device key that opened the session can complete it.
    const other = await d.withNewKey();
    expect(
      (await register(t.url, await other.registerBody('', { token: undefined, pairing: { id: s.body.id, secret: s.body.pollSecret } }))).body.error.code,
    ).toBe('PairingInvalid');
    const r = await register(t.url, await d.registerBody('', { token: undefined, pairing: { id: s.body.id, secret: s.body.pollSecret } }));
    expect(r.body.state).toBe('ready');
    const h = (await t.api('GET', `/api/v1/edgehosts/${r.body.hostName}`)).body;
    expect(h.metadata).toMatchObject({ project: 'stores', labels: { tier: 'edge' } });
    expect(h.spec.site).toBe('shop-2');
    expect((await poll()).state).toBe('completed');
    expect((await t.api('POST', '/api/v1/pairings/ZZZZ2222/claim', {})).body.error.code).toBe('PairingCodeInvalid');
    // Viewers may not claim.
    const viewerToken = await makeViewer(t);
    expect((await t.api('POST', `/api/v1/pairings/ZZZZ2222/claim`, {}, { token: viewerToken })).status).toBe(403);
  });

  it('issues cloud-config user-data and a NoCloud seed ISO for a token', async () => {
    const bad = await t.api('POST', '/api/v1/registrationtokens/auto/installer', {});
    expect(bad.body.error.code).toBe('ValidationFailed');
    expect((await t.api('POST', '/api/v1/registrationtokens/auto/installer', { tokenSecret: 'eprt_wrong' })).body.error.code).toBe('ValidationFailed');
    const res = await fetch(`${t.url}/api/v1/registrationtokens/auto/installer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        tokenSecret: autoSecret,
        labels: { rack: '3' },
        ntp: ['ntp.example.com'],
        network: { mode: 'static', address: '10.0.0.5/24', gateway: '10.0.0.1', dns: ['10.0.0.1'] },
      }),
    });
    const text = await res.text();
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    const doc = CloudConfig.parse(parse(text));
    expect(doc.edgeplane).toMatchObject({ server: t.url, token: autoSecret, site: 'shop-1', labels: { rack: '3' } });
    expect(doc.ntp?.servers).toEqual(['ntp.example.com']);

    const iso = await fetch(`${t.url}/api/v1/registrationtokens/auto/installer?format=iso`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rotate: true, network: { mode: 'static', address: '10.0.0.5/24', gateway: '10.0.0.1' } }),
    });
    expect(iso.headers.get('x-edgeplane-token-rotated')).toBe('true');
    const dir = mkdtempSync(join(tmpdir(), 'seed-'));
    try {
      writeFileSync(join(dir, 'seed.iso'), Buffer.from(await iso.arrayBuffer()));
      const info = execFileSync('xorriso', ['-indev', join(dir, 'seed.iso'), '-pvd_info'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(info).toMatch(/Volume Id\s*:\s*cidata/);
      execFileSync('xorriso', ['-osirrox', 'on', '-indev', join(dir, 'seed.iso'), '-extract', '/', join(dir, 'out')], { stdio: 'ignore' });
      const rotated = CloudConfig.parse(parse(readFileSync(join(dir, 'out', 'user-data'), 'utf8')));
      expect(rotated.edgeplane.token).not.toBe(autoSecret);
      expect(readFileSync(join(dir, 'out', 'meta-data'), 'utf8')).toMatch(/instance-id: edgeplane-[0-9a-f]+\nlocal-hostname: edgeplane-auto/);
      expect(parse(readFileSync(join(dir, 'out', 'network-config'), 'utf8'))).toMatchObject({ version: 2 });
      // The rotated secret registers; the old one no longer does.
      const d = await TestDevice.create();
      expect((await register(t.url, await d.registerBody(autoSecret))).body.error.code).toBe('RegistrationTokenInvalid');
      expect((await register(t.url, await d.registerBody(rotated.edgeplane.token!))).status).toBe(200);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers InstallerToolMissing without xorriso or genisoimage, and a requested rotation is not applied', async () => {
    const secret = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'no-tools' }, spec: { autoApprove: true } })).body.status.token;
    const path = process.env.PATH;
    // The server runs in this process: an empty PATH is a server without the ISO tools.
    process.env.PATH = '/nonexistent';
    let res: Response;
    try {
      res = await fetch(`${t.url}/api/v1/registrationtokens/no-tools/installer?format=iso`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ rotate: true }),
      });
    } finally {
      process.env.PATH = path;
    }
    expect(res.status).toBe(501);
    expect(((await res.json()) as any).error.code).toBe('InstallerToolMissing');
    expect(res.headers.get('x-edgeplane-token-rotated')).toBeNull();
    // Nothing written: the old secret still registers.
    const d = await TestDevice.create();
    expect((await register(t.url, await d.registerBody(secret))).status).toBe(200);
  });

  it('refuses a rejected host with HostRejected, on connect and on re-registration with a new key, writing nothing', async () => {
    // A fresh token: the installer test above rotated the secret of `auto`.
    const secret = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'to-reject' }, spec: { autoApprove: true } })).body.status.token;
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(secret));
    expect((await t.api('POST', `/api/v1/edgehosts/${r.body.hostName}/reject`)).body.status.state).toBe('rejected');
    await expect(connect(t.url, await d.connectToken(r.body.hostName))).rejects.toMatchObject({ status: 403, body: { error: { code: 'HostRejected' } } });
    const before = (await t.api('GET', `/api/v1/edgehosts/${r.body.hostName}`)).body;
    const reinstalled = await d.withNewKey();
    const again = await register(t.url, await reinstalled.registerBody(secret));
    expect([again.status, again.body.error.code]).toEqual([403, 'HostRejected']);
    const after = (await t.api('GET', `/api/v1/edgehosts/${r.body.hostName}`)).body;
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.status.pendingKeyFingerprint).toBeUndefined();
  });

  // Last in this file: it spends part of this server's per-source claim budget (10).
  it('rate-limits claims per code: the sixth try of one code answers 429 RateLimited with Retry-After', async () => {
    const codes: string[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 6; i++) {
      last = await fetch(`${t.url}/api/v1/pairings/WRNG2345/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.admin}`, 'content-type': 'application/json' },
        body: '{}',
      });
      const body = (await last.json()) as any;
      codes.push(body.error.code);
      if (i === 5) expect(body.error.message).toContain('for this code');
    }
    expect(codes).toEqual([...Array(5).fill('PairingCodeInvalid'), 'RateLimited']);
    expect(last!.status).toBe(429);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});

async function makeViewer(t: TestServer): Promise<string> {
  await t.api('POST', '/api/v1/users', { metadata: { name: 'vera' }, spec: { role: 'viewer' } });
  return (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vera-token' }, spec: { user: 'vera' } })).body.status.token;
}
