import { execFile } from 'node:child_process';
import { createPublicKey, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCredential, parseTpmSigningKey, TPMA, TpmStructureError } from '../../packages/server/src/agent/tpm-credential.js';
import { type SoftwareTpm, startSwtpm } from '../support/swtpm.js';

const run = promisify(execFile);

/**
 * The server's MakeCredential against a real TPM (swtpm) through tpm2-tools 5.x: what it makes for the
 * TPM's EK and the Name of a key in that TPM is activated by tpm2_activatecredential(1), exactly as
 * the man page shows (a policysecret session on the endorsement hierarchy authorizes the EK); a wrong
 * Name or another TPM's EK cannot be activated.
 */
describe('TPM credential protection (server MakeCredential, swtpm ActivateCredential)', () => {
  let a: SoftwareTpm;
  let b: SoftwareTpm;
  let dir: string;
  /** One tool call, then the transient objects it left are flushed (swtpm has no resource manager: three slots). */
  const tool = async (tpm: SoftwareTpm, cmd: string, args: string[]) => {
    try {
      return await run(cmd, [`--tcti=${tpm.tcti}`, '-Q', ...args]);
    } finally {
      await run('tpm2_flushcontext', [`--tcti=${tpm.tcti}`, '-t']).catch(() => {});
    }
  };
  const f = (name: string) => join(dir, name);

  /** The EK (PEM) and a new P-256 signing key (TPM2B_PUBLIC, TPM2B_PRIVATE) of `tpm`, as the agent makes them. */
  async function provision(tpm: SoftwareTpm, tag: string) {
    await tool(tpm, 'tpm2_createek', ['-c', f(`${tag}-ek.ctx`), '-G', 'rsa', '-u', f(`${tag}-ek.pub`)]);
    await tool(tpm, 'tpm2_readpublic', ['-c', f(`${tag}-ek.ctx`), '-f', 'pem', '-o', f(`${tag}-ek.pem`)]);
    await tool(tpm, 'tpm2_createprimary', ['-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb', '-c', f(`${tag}-primary.ctx`)]);
    await tool(tpm, 'tpm2_create', [
      '-C',
      f(`${tag}-primary.ctx`),
      '-G',
      'ecc256:ecdsa-sha256',
      '-a',
      'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign',
      '-u',
      f(`${tag}-key.pub`),
      '-r',
      f(`${tag}-key.priv`),
    ]);
    return { ekPem: await readFile(f(`${tag}-ek.pem`), 'utf8'), keyPublic: await readFile(f(`${tag}-key.pub`)) };
  }

  /** tpm2_activatecredential(1) in `tpm` for the key `tag` made there: the recovered secret, or the tool's error. */
  async function activate(tpm: SoftwareTpm, tag: string, blob: Buffer): Promise<Buffer> {
    await writeFile(f('cred.in'), blob);
    try {
      await tool(tpm, 'tpm2_createprimary', ['-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb', '-c', f('p.ctx')]);
      await tool(tpm, 'tpm2_load', ['-C', f('p.ctx'), '-u', f(`${tag}-key.pub`), '-r', f(`${tag}-key.priv`), '-c', f('key.ctx')]);
      await tool(tpm, 'tpm2_createek', ['-c', f('ek.ctx'), '-G', 'rsa']);
      await tool(tpm, 'tpm2_startauthsession', ['--policy-session', '-S', f('session.ctx')]);
      await tool(tpm, 'tpm2_policysecret', ['-S', f('session.ctx'), '-c', 'e']);
      await tool(tpm, 'tpm2_activatecredential', [
        '-c',
        f('key.ctx'),
        '-C',
        f('ek.ctx'),
        '-i',
        f('cred.in'),
        '-o',
        f('cred.out'),
        '-P',
        `session:${f('session.ctx')}`,
      ]);
      return await readFile(f('cred.out'));
    } finally {
      await tool(tpm, 'tpm2_flushcontext', [f('session.ctx')]).catch(() => {});
    }
  }

  beforeAll(async () => {
    [a, b] = await Promise.all([startSwtpm(), startSwtpm()]);
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-tpmcred-'));
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('parses the key tpm2_create made: P-256 coordinates equal tpm2_readpublic, the Name equals what tpm2 computes', async () => {
    const { keyPublic } = await provision(a, 'a');
    const key = parseTpmSigningKey(keyPublic);
    expect(key.objectAttributes & TPMA.fixedTPM).toBeTruthy();
    await tool(a, 'tpm2_createprimary', ['-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb', '-c', f('p.ctx')]);
    await tool(a, 'tpm2_load', ['-C', f('p.ctx'), '-u', f('a-key.pub'), '-r', f('a-key.priv'), '-c', f('key.ctx'), '-n', f('key.name')]);
    await tool(a, 'tpm2_readpublic', ['-c', f('key.ctx'), '-f', 'pem', '-o', f('key.pem')]);
    const jwk = createPublicKey(await readFile(f('key.pem'), 'utf8')).export({ format: 'jwk' });
    expect([key.x.toString('base64url'), key.y.toString('base64url')]).toEqual([jwk.x, jwk.y]);
    expect(key.name.toString('hex')).toBe((await readFile(f('key.name'))).toString('hex'));
  }, 60_000);

  it('a credential made for the TPM EK and the key Name is recovered by that TPM only; a wrong Name or another TPM fails', async () => {
    const mine = await provision(a, 'a');
    const theirs = await provision(b, 'b');
    const key = parseTpmSigningKey(mine.keyPublic);
    const secret = randomBytes(32);
    expect((await activate(a, 'a', makeCredential(mine.ekPem, key.name, secret).blob)).equals(secret)).toBe(true);
    // Made for another object's Name (the other TPM's key): the TPM refuses (integrity check).
    const otherName = parseTpmSigningKey(theirs.keyPublic).name;
    await expect(activate(a, 'a', makeCredential(mine.ekPem, otherName, secret).blob)).rejects.toThrow(/activatecredential/);
    // Made for the right Name but another TPM's EK: this TPM cannot decrypt the seed.
    await expect(activate(a, 'a', makeCredential(theirs.ekPem, key.name, secret).blob)).rejects.toThrow(/activatecredential/);
    // And the other TPM, holding that EK but not the key, cannot answer for it either.
    await expect(activate(b, 'b', makeCredential(theirs.ekPem, key.name, secret).blob)).rejects.toThrow(/activatecredential/);
  }, 120_000);

  it('refuses public areas that are not a fixed TPM P-256 signing key', async () => {
    const { keyPublic } = await provision(a, 'a');
    const withAttributes = (set: number, clear: number) => {
      const copy = Buffer.from(keyPublic);
      copy.writeUInt32BE(((copy.readUInt32BE(6) | set) & ~clear) >>> 0, 6);
      return copy;
    };
    for (const bad of [
      withAttributes(0, TPMA.fixedTPM),
      withAttributes(0, TPMA.sensitiveDataOrigin),
      withAttributes(TPMA.decrypt, 0),
      withAttributes(TPMA.restricted, 0),
      keyPublic.subarray(0, keyPublic.length - 1),
      Buffer.concat([keyPublic, Buffer.alloc(1)]),
    ])
      expect(() => parseTpmSigningKey(bad)).toThrow(TpmStructureError);
    const ekPem = await readFile(f('a-ek.pem'), 'utf8');
    expect(() => makeCredential(ekPem, Buffer.alloc(34), Buffer.alloc(33))).toThrow(TpmStructureError);
  }, 60_000);
});
