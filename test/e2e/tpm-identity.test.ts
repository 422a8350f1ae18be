import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, AgentConfig, DeviceIdentity, SimDevice } from '@edgeplane/agent';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSecretBox, SecretBox } from '../../packages/server/src/cluster/secret-box.js';
import { DIALECTS } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import { dumpStore } from '../support/fuzz/store-dump.js';
import { type TestServer, testServer } from '../support/server.js';
import { type SoftwareTpm, startSwtpm, TpmTestDevice } from '../support/swtpm.js';

const TIMING = { backoffBaseMs: 50, backoffCapMs: 300, slowRetryMs: 300, requestTimeoutMs: 3000, stableAfterMs: 1000, closeTimeoutMs: 200 };

/**
 * A real agent on a simulated device with a software TPM (swtpm) attached, through the public
 * registration, agent-channel and API paths: its identity key lives in the TPM, the host records
 * `identity: tpm` with the TPM's endorsement key, and neither a file key nor a copy of its data dir on
 * a machine with another TPM can act as that host.
 */
describe.each(DIALECTS)('TPM-bound device identity (%s)', (dialect) => {
  let t: TestServer;
  let work: string;
  let tpmA: SoftwareTpm;
  let tpmB: SoftwareTpm;
  let agent: Agent;
  let hostName: string;
  let deviceUid: string;
  const secrets: Record<string, string> = {};
  const host = async (name = hostName) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;
  const refusal = (token: string) =>
    connect(t.url, token).then(
      ({ ws }) => {
        ws.close();
        return undefined;
      },
      (e) => ({ status: e.status, code: e.body?.error?.code }),
    );
  /**
   * The store as users see it, without what the connected agent's heartbeats move (its host's
   * resourceVersion, lastSeen and reported status) and without its own events: what a refused
   * attempt must leave exactly as it was.
   */
  const snapshot = async () => {
    const dump = await dumpStore(t.url, t.admin);
    const out: Record<string, unknown> = {};
    for (const [key, o] of dump.objects) {
      if (key.startsWith('events/') && (o.spec as { source?: string }).source === 'agent') continue;
      if (key === `edgehosts/${hostName}`) {
        const { resourceVersion: _rv, ...metadata } = o.metadata as Record<string, unknown>;
        const { lastSeen: _l, agent: _a, connectivity: _c, observedGeneration: _g, ...status } = o.status as Record<string, unknown>;
        out[key] = { ...o, metadata, status };
      } else if (key.startsWith('registrationtokens/')) {
        out[key] = { ...o, status: { ...(o.status as object), lastUsedAt: undefined } };
      } else out[key] = o;
    }
    return { objects: out, audit: dump.audit };
  };

  beforeAll(async () => {
    [t, tpmA, tpmB] = await Promise.all([testServer(dialect), startSwtpm({ ekCertificate: true }), startSwtpm()]);
    work = await mkdtemp(join(tmpdir(), 'edgeplane-tpm-'));
    for (const [name, spec] of [
      ['tpm-only', { autoApprove: true, requireTpm: true }],
      ['any', { autoApprove: true }],
    ] as const)
      secrets[name] = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec })).body.status.token;
  });
  afterAll(async () => {
    await agent?.stop();
    await t?.close();
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a device with a TPM registers with a requireTpm token as identity: tpm, with its EK, and comes online', async () => {
    agent = new Agent({
      config: AgentConfig.parse({ server: t.url, dataDir: join(work, 'a', 'data'), token: secrets['tpm-only'], pairingPage: { enabled: false } }),
      device: new SimDevice({ root: join(work, 'a', 'root'), tpm: { tcti: tpmA.tcti } }),
      logger: pino({ level: 'silent' }),
      timing: TIMING,
    });
    await agent.start();
    await waitFor(() => agent.connected, 30_000);
    hostName = agent.hostName!;
    const h = await host();
    deviceUid = h.status.deviceUid;
    expect(h.status).toMatchObject({ state: 'ready', registrationToken: 'tpm-only', identity: { kind: 'tpm' } });
    expect(h.status.identity.ekPublicKey).toContain('BEGIN PUBLIC KEY');
    // swtpm_setup provisioned an EK certificate (swtpm's local CA), as a TPM vendor does.
    expect(h.status.identity.ekCertificate).toContain('BEGIN CERTIFICATE');
    expect(h.status.identity.ekFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(h.status.pendingKeyFingerprint).toBeUndefined();
    await waitFor(async () => (await host()).status.connectivity === 'online', 10_000);
  }, 60_000);

  it('a device without a TPM is refused by a requireTpm token and nothing is written', async () => {
    const before = await snapshot();
    // A new device, and the TPM host's own device UID presenting a file key: both refused the same way.
    for (const d of [await TestDevice.create(), await TestDevice.create(deviceUid)]) {
      const res = await register(t.url, await d.registerBody(secrets['tpm-only']));
      expect(res).toMatchObject({ status: 403, body: { error: { code: 'TpmIdentityRequired' } } });
    }
    expect(await snapshot()).toEqual(before);
    expect(agent.connected).toBe(true);
  });

  it('a file key claiming the TPM host (any token) is only a key change request: the host keeps its TPM key, identity and connection', async () => {
    const bound = await host();
    const impostor = await TestDevice.create(deviceUid);
    const res = await register(t.url, await impostor.registerBody(secrets.any));
    expect(res).toMatchObject({ status: 200, body: { hostName, state: 'pending-approval' } });
    // The file key never opens the channel: it waits for an operator.
    expect(await refusal(await impostor.connectToken(hostName))).toEqual({ status: 403, code: 'DeviceKeyPending' });
    const after = await host();
    expect(after.status).toMatchObject({
      state: 'ready',
      keyFingerprint: bound.status.keyFingerprint,
      identity: bound.status.identity,
      pendingIdentity: { kind: 'file' },
    });
    const condition = after.status.conditions.find((c: { type: string }) => c.type === 'KeyChangePending');
    expect(condition.message).toContain('a file key replacing the TPM-bound key');
    expect(agent.connected).toBe(true);
    // The operator refuses it: the TPM binding stays as it was.
    expect((await t.api('POST', `/api/v1/edgehosts/${hostName}/reject-key`)).status).toBe(200);
    const kept = await host();
    expect(kept.status.pendingIdentity).toBeUndefined();
    expect(kept.status.identity).toEqual(bound.status.identity);
    expect(kept.status.keyFingerprint).toBe(bound.status.keyFingerprint);
  });

  it("a copy of the device's disk (data dir and device UID) on a machine with another TPM cannot connect as the host", async () => {
    const before = await snapshot();
    // The disk copied to a second machine: same device UID file, same identity.json, another swtpm state.
    await cp(join(work, 'a'), join(work, 'b'), { recursive: true });
    const copy = new Agent({
      config: AgentConfig.parse({ server: t.url, dataDir: join(work, 'b', 'data'), token: secrets.any, pairingPage: { enabled: false } }),
      device: new SimDevice({ root: join(work, 'b', 'root'), tpm: { tcti: tpmB.tcti } }),
      logger: pino({ level: 'silent' }),
      timing: TIMING,
    });
    await expect(copy.start()).rejects.toThrow(/TPM cannot load.*another machine/s);
    expect(copy.connected).toBe(false);
    // The second machine's own TPM key signing for the host: not the key the host is bound to.
    const other = await DeviceIdentity.loadOrCreate(join(work, 'b-own'), {
      device: new SimDevice({ root: join(work, 'b', 'root'), tpm: { tcti: tpmB.tcti } }),
    });
    expect(other.kind).toBe('tpm');
    expect(await refusal(await other.signConnectToken(hostName))).toEqual({ status: 401, code: 'ConnectTokenInvalid' });
    // Nor does a token in the TPM key's algorithm, but signed by some other P-256 key.
    const forger = await TestDevice.createP256(deviceUid);
    expect(await refusal(await forger.connectToken(hostName))).toEqual({ status: 401, code: 'ConnectTokenInvalid' });
    expect(await snapshot()).toEqual(before);
    expect(agent.connected).toBe(true);
  }, 60_000);

  it('the TPM agent keeps its host across a restart: the key is loaded from the TPM again', async () => {
    const fingerprint = (await host()).status.keyFingerprint;
    await agent.stop();
    await agent.start();
    await waitFor(() => agent.connected, 30_000);
    expect(agent.hostName).toBe(hostName);
    expect((await host()).status).toMatchObject({ keyFingerprint: fingerprint, identity: { kind: 'tpm' } });
  }, 60_000);
});

describe.each(DIALECTS)('device key algorithms (%s)', (dialect) => {
  let t: TestServer;
  let token: string;
  let swtpm: SoftwareTpm;
  beforeAll(async () => {
    [t, swtpm] = await Promise.all([testServer(dialect), startSwtpm()]);
    token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
  });
  afterAll(async () => {
    await t?.close();
    await swtpm?.stop();
  });

  it('refuses a tpm identity with an Ed25519 key, and a file identity with a P-256 key, writing nothing', async () => {
    const before = await dumpStore(t.url, t.admin);
    const file = await TestDevice.create();
    const p256 = await TestDevice.createP256();
    const mismatched = [
      await file.registerBody(token, { identity: p256.identity }),
      await p256.registerBody(token, { identity: { kind: 'file' } }),
      await p256.registerBody(token, { identity: undefined }),
    ];
    for (const body of mismatched) expect((await register(t.url, body)).body.error.code).toBe('ValidationFailed');
    // An EK that is armoured like a PEM key but is not one.
    const bogusEk = { kind: 'tpm', ekPublicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' };
    expect(await register(t.url, await p256.registerBody(token, { identity: bogusEk }))).toMatchObject({
      status: 400,
      body: { error: { code: 'ValidationFailed' } },
    });
    const after = await dumpStore(t.url, t.admin);
    expect([...after.objects.keys()]).toEqual([...before.objects.keys()]);
  });

  it('an approved key change moves the host to the new key and its identity (file to tpm), and only that key connects', async () => {
    const file = await TestDevice.create();
    const name = (await register(t.url, await file.registerBody(token))).body.hostName;
    const tpm = await TpmTestDevice.create(swtpm, file.uid);
    expect((await tpm.register(t.url, { token })).body).toMatchObject({ hostName: name, state: 'pending-approval' });
    const pending = (await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status;
    expect(pending).toMatchObject({ state: 'ready', identity: { kind: 'file' }, pendingIdentity: { kind: 'tpm' } });
    const approved = await t.api('POST', `/api/v1/edgehosts/${name}/approve-key`, { fingerprint: pending.pendingKeyFingerprint });
    expect(approved.status).toBe(200);
    const after = (await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status;
    expect(after.keyFingerprint).toBe(pending.pendingKeyFingerprint);
    expect(after.identity).toMatchObject({ kind: 'tpm', ekPublicKey: tpm.claim.ekPublicKey, ekFingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(after.pendingIdentity).toBeUndefined();
    await expect(connect(t.url, await file.connectToken(name))).rejects.toMatchObject({ status: 401, body: { error: { code: 'ConnectTokenInvalid' } } });
    const ok = await connect(t.url, await tpm.connectToken(name));
    ok.ws.close();
  });

  it('a TPM key pairs with a code like a file key, and only that key completes the pairing', async () => {
    const d = await TpmTestDevice.create(swtpm);
    const start = await fetch(`${t.url}/agent/v1/pairings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...(await d.registerBody({})), identity: undefined }),
    });
    expect(start.status).toBe(201);
    const s = await start.json();
    expect((await t.api('POST', `/api/v1/pairings/${s.code}/claim`, {})).status).toBe(200);
    const pairing = { pairing: { id: s.id, secret: s.pollSecret } };
    const other = await TpmTestDevice.create(swtpm, d.uid);
    expect((await other.register(t.url, pairing)).body.error.code).toBe('PairingInvalid');
    const r = await d.register(t.url, pairing);
    expect(r.body.state).toBe('ready');
    expect((await t.api('GET', `/api/v1/edgehosts/${r.body.hostName}`)).body.status).toMatchObject({ registeredVia: 'pairing', identity: { kind: 'tpm' } });
  });

  it('a host bound to a P-256 key accepts only ES256 tokens by that key; an Ed25519 host only EdDSA', async () => {
    const p256 = await TpmTestDevice.create(swtpm);
    const name = (await p256.register(t.url, { token })).body.hostName;
    expect((await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status.identity).toMatchObject({ kind: 'tpm' });
    const ok = await connect(t.url, await p256.connectToken(name));
    ok.ws.close();
    // An EdDSA token naming the P-256 host (an Ed25519 key of the attacker's): refused.
    const ed = await TestDevice.create();
    await expect(connect(t.url, await ed.connectToken(name))).rejects.toMatchObject({ status: 401, body: { error: { code: 'ConnectTokenInvalid' } } });
    const edName = (await register(t.url, await ed.registerBody(token))).body.hostName;
    expect((await t.api('GET', `/api/v1/edgehosts/${edName}`)).body.status.identity).toEqual({ kind: 'file' });
    await expect(connect(t.url, await p256.connectToken(edName))).rejects.toMatchObject({ status: 401, body: { error: { code: 'ConnectTokenInvalid' } } });
  });
});

/**
 * A registration that says `identity: tpm` is believed only once the TPM whose EK it names has
 * activated a credential for the key (TPM 2.0 credential protection). Every refusal leaves the store
 * as it was.
 */
describe.each(DIALECTS)('TPM credential activation at registration (%s)', (dialect) => {
  let t: TestServer;
  let token: string;
  let tpmA: SoftwareTpm;
  let tpmB: SoftwareTpm;
  const keys = async () => [...(await dumpStore(t.url, t.admin)).objects.keys()].filter((k) => !k.startsWith('registrationtokens/'));
  const store = async () => {
    const dump = await dumpStore(t.url, t.admin);
    return { objects: [...dump.objects.entries()], audit: dump.audit };
  };
  beforeAll(async () => {
    [t, tpmA, tpmB] = await Promise.all([testServer(dialect), startSwtpm(), startSwtpm()]);
    token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'tpm-only' }, spec: { autoApprove: true, requireTpm: true } })).body.status
      .token;
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
  });

  it('a tpm registration without an answer gets a credential and a sealed challenge, and nothing is written', async () => {
    const before = await store();
    const d = await TpmTestDevice.create(tpmA);
    const res = await register(t.url, await d.registerBody({ token }));
    expect(res).toMatchObject({ status: 401, body: { error: { code: 'TpmActivationRequired' } } });
    expect(res.body.error.details).toMatchObject({ credential: expect.any(String), challenge: expect.any(String), expiresAt: expect.any(String) });
    expect(Date.parse(res.body.error.details.expiresAt) - Date.now()).toBeLessThanOrEqual(300_000);
    expect(await store()).toEqual(before);
    // The TPM answers, and the device registers as identity: tpm.
    const ok = await register(t.url, await d.registerBody({ token }, await d.answer(res.body)));
    expect(ok).toMatchObject({ status: 200, body: { state: 'ready' } });
    expect((await t.api('GET', `/api/v1/edgehosts/${ok.body.hostName}`)).body.status.identity).toMatchObject({ kind: 'tpm', ekPublicKey: d.claim.ekPublicKey });
  }, 60_000);

  it("a forged client (software P-256 key, a real TPM's EK) cannot register as tpm: it cannot activate the credential", async () => {
    const before = await store();
    const real = await TpmTestDevice.create(tpmA);
    const forger = await TestDevice.createP256();
    const jwk = forger.jwk as { x: string; y: string };
    // The forger's own key in a TPM public area with every attribute the server asks for.
    const area = Buffer.from(real.claim.keyPublic, 'base64');
    Buffer.from(jwk.x, 'base64url').copy(area, area.length - 66);
    Buffer.from(jwk.y, 'base64url').copy(area, area.length - 32);
    const claim = { ...real.claim, keyPublic: area.toString('base64') };
    const body = async (activation?: unknown) => ({ ...(await forger.registerBody(token)), identity: { ...claim, ...(activation ? { activation } : {}) } });
    const first = await register(t.url, await body());
    expect(first).toMatchObject({ status: 401, body: { error: { code: 'TpmActivationRequired' } } });
    // The credential is for TPM A's EK and the forged key's Name: TPM A holds no such key.
    await expect(real.identity.activateCredential(first.body.error.details.credential)).rejects.toThrow(/activatecredential/);
    // Guessing the secret: refused with a fresh challenge.
    const guess = await register(t.url, await body({ challenge: first.body.error.details.challenge, secret: randomBytes(32).toString('base64') }));
    expect(guess).toMatchObject({ status: 401, body: { error: { code: 'TpmActivationRequired', message: expect.stringContaining('not the one') } } });
    // The real TPM's public area with the forger's JWK: not the same key.
    const mismatch = await register(t.url, { ...(await forger.registerBody(token)), identity: real.claim });
    expect(mismatch).toMatchObject({ status: 400, body: { error: { code: 'ValidationFailed' } } });
    // Without a TPM public area at all: not a tpm registration the server accepts.
    const bare = await register(t.url, await forger.registerBody(token));
    expect(bare).toMatchObject({ status: 400, body: { error: { code: 'ValidationFailed' } } });
    expect(await store()).toEqual(before);
  }, 60_000);

  it("a correct answer replayed for another key, or a key in another TPM claiming this TPM's EK, is refused", async () => {
    const before = await store();
    const a = await TpmTestDevice.create(tpmA);
    const first = await register(t.url, await a.registerBody({ token }));
    const answer = await a.answer(first.body);
    // Another key (in the same TPM, and in another TPM) presenting A's answer.
    for (const other of [await TpmTestDevice.create(tpmA), await TpmTestDevice.create(tpmB, a.uid)]) {
      const res = await register(t.url, await other.registerBody({ token }, answer));
      expect(res).toMatchObject({ status: 401, body: { error: { code: 'TpmActivationRequired', message: expect.stringContaining('another key or TPM') } } });
    }
    // A key in TPM B claiming TPM A's EK: the credential is for A's EK, which TPM B cannot use.
    const b = await TpmTestDevice.create(tpmB);
    const claimA = { ...b.claim, ekPublicKey: a.claim.ekPublicKey };
    const asked = await register(t.url, await b.registerBody({ token }, undefined, claimA));
    expect(asked.body.error.code).toBe('TpmActivationRequired');
    await expect(b.identity.activateCredential(asked.body.error.details.credential)).rejects.toThrow(/activatecredential/);
    expect(await store()).toEqual(before);
    // A's own answer still registers A.
    expect(await register(t.url, await a.registerBody({ token }, answer))).toMatchObject({ status: 200 });
  }, 60_000);

  it('an expired challenge, or one sealed with another server secret, is refused', async () => {
    const d = await TpmTestDevice.create(tpmA);
    const first = await register(t.url, await d.registerBody({ token }));
    const answer = await d.answer(first.body);
    // The same binding and secret, sealed as this server would but expired; and sealed by another key.
    const box = loadSecretBox(t.store.dataDir);
    const sealed = JSON.parse(box.open(answer.challenge, 'tpm-activation/v1'));
    const expired = box.seal(JSON.stringify({ ...sealed, exp: Date.now() - 1000 }), 'tpm-activation/v1');
    const foreign = new SecretBox(randomBytes(32)).seal(JSON.stringify(sealed), 'tpm-activation/v1');
    const before = await keys();
    for (const [challenge, why] of [
      [expired, 'expired'],
      [foreign, 'not sealed by this server'],
    ]) {
      const res = await register(t.url, await d.registerBody({ token }, { challenge, secret: answer.secret }));
      expect(res).toMatchObject({ status: 401, body: { error: { code: 'TpmActivationRequired', message: expect.stringContaining(why) } } });
    }
    expect(await keys()).toEqual(before);
  }, 60_000);
});
