import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONNECT_AUDIENCE, REGISTER_AUDIENCE } from '@edgeplane/protocol';
import { importJWK, jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeviceIdentity, IDENTITY_FILE } from './identity.js';

describe('DeviceIdentity', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-identity-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the key once, with mode 0600, and loads the same key afterwards', async () => {
    const a = await DeviceIdentity.loadOrCreate(dir);
    const mode = (await stat(join(dir, IDENTITY_FILE))).mode & 0o777;
    expect(mode).toBe(0o600);
    const b = await DeviceIdentity.loadOrCreate(dir);
    expect(b.publicKey).toEqual(a.publicKey);
    expect(a.publicKey).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    expect(Object.keys(a.publicKey).sort()).toEqual(['crv', 'kty', 'x']);
  });

  it('persists the registration per server URL', async () => {
    const a = await DeviceIdentity.loadOrCreate(dir);
    await a.saveRegistration({ server: 'http://cp:8080/', hostName: 'host-1', uid: 'u1', deviceUid: 'dev-12345678', state: 'ready' });
    const b = await DeviceIdentity.loadOrCreate(dir);
    expect(b.registrationFor('http://cp:8080')?.hostName).toBe('host-1');
    expect(b.registrationFor('http://other:8080')).toBeUndefined();
    expect(JSON.parse(await readFile(join(dir, IDENTITY_FILE), 'utf8')).registration.deviceUid).toBe('dev-12345678');
  });

  it('signs tokens that verify with the public key, each with its own jti', async () => {
    const id = await DeviceIdentity.loadOrCreate(dir);
    const key = await importJWK(id.publicKey, 'EdDSA');
    const proof = await jwtVerify(await id.signRegistrationProof('dev-12345678'), key, { audience: REGISTER_AUDIENCE, subject: 'dev-12345678' });
    expect(proof.protectedHeader.alg).toBe('EdDSA');
    expect((proof.payload.exp ?? 0) - (proof.payload.iat ?? 0)).toBe(60);
    const t1 = await jwtVerify(await id.signConnectToken('host-1'), key, { audience: CONNECT_AUDIENCE, subject: 'host-1' });
    const t2 = await jwtVerify(await id.signConnectToken('host-1'), key, { audience: CONNECT_AUDIENCE, subject: 'host-1' });
    expect(t1.payload.jti).toBeTruthy();
    expect(t1.payload.jti).not.toBe(t2.payload.jti);
    // A connect token is not a registration proof.
    await expect(jwtVerify(await id.signConnectToken('host-1'), key, { audience: REGISTER_AUDIENCE })).rejects.toThrow();
  });

  it('refuses a corrupt identity file instead of silently becoming a new device', async () => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, IDENTITY_FILE), '{"version":1}');
    await expect(DeviceIdentity.loadOrCreate(dir)).rejects.toThrow(/not a valid agent identity/);
  });
});
