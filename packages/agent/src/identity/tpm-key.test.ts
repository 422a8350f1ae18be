import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CONNECT_AUDIENCE, REGISTER_AUDIENCE } from '@edgeplane/protocol';
import { importJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SoftwareTpm, startSwtpm } from '../../../../test/support/swtpm.js';
import { SimDevice } from '../device/sim/sim-device.js';
import { DeviceIdentity, IDENTITY_FILE } from '../identity.js';
import { derSignatureToJose, ekFingerprint } from './tpm-key.js';

describe('DeviceIdentity in a TPM (swtpm)', () => {
  let tpmA: SoftwareTpm;
  let tpmB: SoftwareTpm;
  let dir: string;
  beforeAll(async () => {
    [tpmA, tpmB] = await Promise.all([startSwtpm({ ekCertificate: true }), startSwtpm()]);
    dir = await mkdtemp(join(tmpdir(), 'tpm-identity-'));
  });
  afterAll(async () => {
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const device = (root: string, tpm?: SoftwareTpm) => new SimDevice({ root, ...(tpm ? { tpm: { tcti: tpm.tcti } } : {}) });

  it('creates a P-256 key inside the TPM, keeps only wrapped blobs, and signs ES256 tokens the public key verifies', async () => {
    const data = join(dir, 'a');
    const id = await DeviceIdentity.loadOrCreate(data, { device: device(join(dir, 'root-a'), tpmA) });
    expect(id.kind).toBe('tpm');
    expect(id.publicKey).toMatchObject({ kty: 'EC', crv: 'P-256' });
    const file = JSON.parse(await readFile(join(data, IDENTITY_FILE), 'utf8'));
    expect(file.privateKey).toBeUndefined();
    expect(Object.keys(file.tpm).sort()).toEqual(['ekCertificate', 'ekPublicKey', 'private', 'public', 'publicKey']);
    // swtpm_setup --create-ek-cert provisioned a certificate for this EK; it is sent along.
    expect(id.claim).toMatchObject({ kind: 'tpm', ekPublicKey: expect.stringContaining('BEGIN PUBLIC KEY') });
    expect(id.claim && 'ekCertificate' in id.claim && id.claim.ekCertificate).toContain('BEGIN CERTIFICATE');
    expect(ekFingerprint(file.tpm.ekPublicKey)).toMatch(/^[0-9a-f]{64}$/);

    const key = await importJWK(id.publicKey, 'ES256');
    const proof = await jwtVerify(await id.signRegistrationProof('dev-12345678'), key, { audience: REGISTER_AUDIENCE, subject: 'dev-12345678' });
    expect(proof.protectedHeader.alg).toBe('ES256');
    const t1 = await jwtVerify(await id.signConnectToken('host-1'), key, { audience: CONNECT_AUDIENCE, algorithms: ['ES256'] });
    const t2 = await jwtVerify(await id.signConnectToken('host-1'), key, { audience: CONNECT_AUDIENCE, algorithms: ['ES256'] });
    expect(t1.payload.jti).not.toBe(t2.payload.jti);

    // Loaded again (agent restart): the same key, still in the TPM.
    const again = await DeviceIdentity.loadOrCreate(data, { device: device(join(dir, 'root-a'), tpmA) });
    expect(again.publicKey).toEqual(id.publicKey);
    await jwtVerify(await again.signConnectToken('host-1'), key, { audience: CONNECT_AUDIENCE });
  });

  it('a copy of the data dir on a machine with another TPM cannot load the key, and never falls back to a new one', async () => {
    const copy = join(dir, 'copy');
    await cp(join(dir, 'a'), copy, { recursive: true });
    const before = await readFile(join(copy, IDENTITY_FILE), 'utf8');
    await expect(DeviceIdentity.loadOrCreate(copy, { device: device(join(dir, 'root-b'), tpmB) })).rejects.toThrow(/cannot load.*another machine/);
    // Nor on a machine without any TPM.
    await expect(DeviceIdentity.loadOrCreate(copy, { device: device(join(dir, 'root-c')) })).rejects.toThrow(/cannot load/);
    expect(await readFile(join(copy, IDENTITY_FILE), 'utf8')).toBe(before);
  });

  it('without a TPM the key is an Ed25519 file key, as before', async () => {
    const id = await DeviceIdentity.loadOrCreate(join(dir, 'no-tpm'), { device: device(join(dir, 'root-d')) });
    expect(id.kind).toBe('file');
    expect(id.claim).toBeUndefined();
    expect(id.publicKey).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
  });

  it('a TPM that refuses to make the key (owner hierarchy with a password) leaves the device with a file key, and says so', async () => {
    const locked = await startSwtpm();
    try {
      await promisify(execFile)('tpm2_changeauth', [`--tcti=${locked.tcti}`, '-c', 'o', 'owner-secret']);
      const warnings: string[] = [];
      const logger = { info() {}, warn: (_o: object, msg: string) => void warnings.push(msg) };
      const id = await DeviceIdentity.loadOrCreate(join(dir, 'locked'), { device: device(join(dir, 'root-e'), locked), logger });
      expect(id.kind).toBe('file');
      expect(warnings).toEqual([expect.stringContaining('refused to make the identity key; using a file key')]);
    } finally {
      await locked.stop();
    }
  });

  it('a file identity stays a file identity when a TPM appears later', async () => {
    const id = await DeviceIdentity.loadOrCreate(join(dir, 'no-tpm'), { device: device(join(dir, 'root-d'), tpmB) });
    expect(id.kind).toBe('file');
  });
});

describe('derSignatureToJose', () => {
  it('unpacks r and s, dropping the sign byte and left-padding short integers', () => {
    const r = Buffer.alloc(32, 0x81); // high bit set: DER prepends 0x00
    const s = Buffer.from([0x01, 0x02]); // short: padded to 32 bytes
    const der = Buffer.concat([Buffer.from([0x30, 4 + 33 + 2, 0x02, 33, 0x00]), r, Buffer.from([0x02, 2]), s]);
    const jose = derSignatureToJose(der);
    expect(Buffer.from(jose.slice(0, 32))).toEqual(r);
    expect(Buffer.from(jose.slice(32))).toEqual(Buffer.concat([Buffer.alloc(30), s]));
    expect(() => derSignatureToJose(Buffer.from([0x31, 0x00]))).toThrow(/DER/);
  });
});
