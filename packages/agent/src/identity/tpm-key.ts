import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { P256PublicKey } from '@edgeplane/protocol';
import type { Device } from '../device/device.js';

/**
 * The device's identity key inside its TPM 2.0, driven with tpm2-tools (5.x) through the Device's
 * exec, like every other side effect of the agent. No npm library talks to a TPM from Node without a
 * native addon (the TSS is C: tpm2-tss); tpm2-tools is that TSS's own command-line front end and is
 * in Debian (`tpm2-tools`), so Edgeplane OS ships it rather than a compiled addon.
 *
 * The key: ECDSA NIST P-256 (TPM 2.0 has no Ed25519), created by the TPM under the owner hierarchy's
 * storage primary key with attributes fixedtpm|fixedparent|sensitivedataorigin (tpm2_create(1)): the
 * TPM generated it and will never duplicate it, so its private part never exists outside this TPM.
 * What the agent keeps (identity.json) is the key's public area and its private area wrapped by the
 * storage primary: only this TPM can load it again. The storage primary is re-derived on each use
 * from the owner seed and a fixed template (tpm2_createprimary -C o -G ecc256:aes128cfb, the TCG
 * ECC P-256 SRK template), so nothing is persisted in the TPM's NV and no persistent handle is taken.
 *
 * Every tool call names the TCTI: the kernel's resource manager /dev/tpmrm0, as systemd's tpm2-util
 * does (no dependency on tpm2-abrmd running). Transient objects are flushed after each call
 * (tpm2_flushcontext -t): behind /dev/tpmrm0 that is a no-op, but a TPM without a resource manager
 * (swtpm in tests) holds only three transient objects.
 *
 * References: tpm2-tools 5.4 man pages tpm2_createprimary(1), tpm2_create(1), tpm2_load(1),
 * tpm2_sign(1) (`-f plain`: DER-encoded ECDSA-Sig-Value for ECDSA), tpm2_readpublic(1),
 * tpm2_createek(1), tpm2_nvread(1), tpm2_flushcontext(1), tpm2_getcap(1), tpm2_startauthsession(1),
 * tpm2_policysecret(1), tpm2_activatecredential(1); TCG EK Credential Profile
 * 2.x (RSA 2048 EK certificate NV index 0x01c00002, ECC P-256: 0x01c0000a).
 */
export const TPM_TCTI = 'device:/dev/tpmrm0';
/** The TPM without the kernel's resource manager: for the one sequence that needs a session across tool calls. */
export const TPM_DIRECT_TCTI = 'device:/dev/tpm0';

/** The key's TPM2B_PUBLIC and TPM2B_PRIVATE (wrapped by the storage primary), base64. */
export interface TpmKeyBlobs {
  public: string;
  private: string;
}

/** Which TPM this is: its endorsement key (PEM public key) and, when the TPM carries one, the EK certificate (PEM). */
export interface TpmEndorsement {
  ekPublicKey: string;
  ekCertificate?: string;
}

/** The TPM refused or failed an operation; `message` carries the tool's own words. */
export class TpmError extends Error {
  override name = 'TpmError';
}

const EK_CERT_INDEX = { rsa: '0x01c00002', ecc: '0x01c0000a' } as const;

export class Tpm {
  /** One TPM operation at a time: the work files and (without a resource manager) the transient slots are shared. */
  private queue: Promise<unknown> = Promise.resolve();

  /** `workParent`: a directory of the agent's (its data dir) where per-operation work files live briefly. */
  constructor(
    private readonly device: Pick<Device, 'exec'>,
    private readonly workParent: string,
  ) {}

  /** Whether a TPM 2.0 answers (tpm2_getcap): false when there is none, tpm2-tools is missing, or the device runs none. */
  async present(): Promise<boolean> {
    try {
      const { stdout } = await this.device.exec('tpm2_getcap', [`--tcti=${TPM_TCTI}`, 'properties-fixed'], { timeoutMs: 15_000 });
      return /TPM2_PT_FAMILY_INDICATOR:[\s\S]*?value:\s*"2\.0"/.test(stdout);
    } catch {
      return false;
    }
  }

  /** Creates a new non-exportable P-256 signing key under the storage primary. */
  createKey(): Promise<{ blobs: TpmKeyBlobs; publicKey: P256PublicKey }> {
    return this.withWorkDir(async (dir) => {
      await this.primary(dir);
      await this.tool('tpm2_create', [
        '-C',
        join(dir, 'primary.ctx'),
        '-G',
        'ecc256:ecdsa-sha256',
        '-a',
        'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign',
        '-u',
        join(dir, 'key.pub'),
        '-r',
        join(dir, 'key.priv'),
      ]);
      const blobs = { public: (await readFile(join(dir, 'key.pub'))).toString('base64'), private: (await readFile(join(dir, 'key.priv'))).toString('base64') };
      return { blobs, publicKey: await this.loadedPublicKey(dir, blobs) };
    });
  }

  /** Loads the key into this TPM and reads its public key: fails (TpmError) when another TPM wrapped it. */
  publicKey(blobs: TpmKeyBlobs): Promise<P256PublicKey> {
    return this.withWorkDir((dir) => this.loadedPublicKey(dir, blobs));
  }

  /** ECDSA P-256 / SHA-256 signature of `data` by the key, as JWS wants it: r || s, 32 bytes each (RFC 7518 3.4). */
  sign(blobs: TpmKeyBlobs, data: Uint8Array): Promise<Uint8Array> {
    return this.withWorkDir(async (dir) => {
      await this.load(dir, blobs);
      await writeFile(join(dir, 'data'), data);
      await this.tool('tpm2_sign', ['-c', join(dir, 'key.ctx'), '-g', 'sha256', '-s', 'ecdsa', '-f', 'plain', '-o', join(dir, 'sig'), join(dir, 'data')]);
      return derSignatureToJose(await readFile(join(dir, 'sig')));
    });
  }

  /**
   * The endorsement key (RSA 2048, else ECC P-256, from the TCG default templates) and its certificate
   * from NV when the manufacturer provisioned one whose key matches.
   */
  endorsement(): Promise<TpmEndorsement> {
    return this.withWorkDir(async (dir) => {
      let alg: 'rsa' | 'ecc' = 'rsa';
      try {
        await this.tool('tpm2_createek', ['-c', join(dir, 'ek.ctx'), '-G', 'rsa', '-u', join(dir, 'ek.pub')]);
      } catch {
        alg = 'ecc';
        await this.tool('tpm2_createek', ['-c', join(dir, 'ek.ctx'), '-G', 'ecc', '-u', join(dir, 'ek.pub')]);
      }
      await this.tool('tpm2_readpublic', ['-c', join(dir, 'ek.ctx'), '-f', 'pem', '-o', join(dir, 'ek.pem')]);
      const ekPublicKey = await readFile(join(dir, 'ek.pem'), 'utf8');
      const ekCertificate = await this.tool('tpm2_nvread', [EK_CERT_INDEX[alg], '-C', 'o', '-o', join(dir, 'ek.der')]).then(
        async () => matchingCertificate(await readFile(join(dir, 'ek.der')), ekPublicKey),
        () => undefined, // no certificate provisioned (swtpm without --create-ek-cert, many firmware TPMs)
      );
      return { ekPublicKey, ...(ekCertificate ? { ekCertificate } : {}) };
    });
  }

  /**
   * TPM2_ActivateCredential (tpm2_activatecredential(1)): recovers the secret of a credential (the
   * file tpm2_makecredential writes) made for this TPM's EK and the Name of the key in `blobs`; the
   * TPM refuses unless it holds both. The EK's policy needs a policy session with PolicySecret on the
   * endorsement hierarchy, as the man page's example does. The kernel resource manager (/dev/tpmrm0)
   * flushes a session when the tool that started it exits (tpm2_startauthsession(1) -S note), so the
   * sequence talks to the TPM directly (/dev/tpm0), where each call's transient objects are flushed
   * and the session lives until it is flushed at the end.
   */
  activateCredential(blobs: TpmKeyBlobs, credential: Uint8Array): Promise<Uint8Array> {
    return this.withWorkDir(async (dir) => {
      const tcti = TPM_DIRECT_TCTI;
      const session = join(dir, 'session.ctx');
      await this.load(dir, blobs, tcti);
      await this.tool('tpm2_createek', ['-c', join(dir, 'ek.ctx'), '-G', 'rsa'], tcti);
      await writeFile(join(dir, 'cred.in'), credential);
      await this.tool('tpm2_startauthsession', ['--policy-session', '-S', session], tcti);
      try {
        await this.tool('tpm2_policysecret', ['-S', session, '-c', 'e'], tcti);
        await this.tool(
          'tpm2_activatecredential',
          ['-c', join(dir, 'key.ctx'), '-C', join(dir, 'ek.ctx'), '-i', join(dir, 'cred.in'), '-o', join(dir, 'cred.out'), '-P', `session:${session}`],
          tcti,
        );
      } finally {
        await this.tool('tpm2_flushcontext', [session], tcti).catch(() => {});
      }
      return readFile(join(dir, 'cred.out'));
    });
  }

  private async loadedPublicKey(dir: string, blobs: TpmKeyBlobs): Promise<P256PublicKey> {
    await this.load(dir, blobs);
    await this.tool('tpm2_readpublic', ['-c', join(dir, 'key.ctx'), '-f', 'pem', '-o', join(dir, 'key.pem')]);
    const jwk = createPublicKey(await readFile(join(dir, 'key.pem'), 'utf8')).export({ format: 'jwk' });
    return P256PublicKey.parse(jwk);
  }

  private primary(dir: string, tcti = TPM_TCTI): Promise<void> {
    return this.tool('tpm2_createprimary', ['-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb', '-c', join(dir, 'primary.ctx')], tcti);
  }

  private async load(dir: string, blobs: TpmKeyBlobs, tcti = TPM_TCTI): Promise<void> {
    await this.primary(dir, tcti);
    await writeFile(join(dir, 'key.pub'), Buffer.from(blobs.public, 'base64'));
    await writeFile(join(dir, 'key.priv'), Buffer.from(blobs.private, 'base64'));
    await this.tool('tpm2_load', ['-C', join(dir, 'primary.ctx'), '-u', join(dir, 'key.pub'), '-r', join(dir, 'key.priv'), '-c', join(dir, 'key.ctx')], tcti);
  }

  /** Runs one tool against the TPM, then flushes what it left loaded. */
  private async tool(command: string, args: string[], tcti = TPM_TCTI): Promise<void> {
    try {
      await this.device.exec(command, [`--tcti=${tcti}`, '-Q', ...args], { timeoutMs: 30_000 });
    } catch (err) {
      throw new TpmError(`${command} failed: ${toolError((err as { stderr?: string }).stderr) ?? (err as Error).message}`);
    } finally {
      await this.device.exec('tpm2_flushcontext', [`--tcti=${tcti}`, '-t'], { timeoutMs: 15_000 }).catch(() => {});
    }
  }

  private withWorkDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      await mkdir(this.workParent, { recursive: true, mode: 0o700 });
      const dir = await mkdtemp(join(this.workParent, '.tpm-'));
      try {
        return await fn(dir);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }
}

/** The line of a tool's stderr that says what the TPM answered (tpm2-tools prints the TSS's trace lines before it). */
function toolError(stderr: string | undefined): string | undefined {
  const lines = (stderr ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (
    lines
      .filter((l) => l.startsWith('ERROR: ') && !l.startsWith('ERROR: Unable to run'))
      .at(-1)
      ?.slice(7) ?? lines.at(-1)
  );
}

/** sha256 (hex) of a PEM public key's DER SubjectPublicKeyInfo: how hosts show which TPM they hold. */
export function ekFingerprint(ekPublicKeyPem: string): string {
  return createHash('sha256')
    .update(createPublicKey(ekPublicKeyPem).export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** The EK certificate as PEM when it parses and certifies this EK; else undefined (it would only mislead). */
function matchingCertificate(der: Buffer, ekPublicKeyPem: string): string | undefined {
  try {
    const cert = new X509Certificate(der);
    const certKey = cert.publicKey.export({ type: 'spki', format: 'der' });
    return certKey.equals(createPublicKey(ekPublicKeyPem).export({ type: 'spki', format: 'der' })) ? cert.toString() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * DER ECDSA-Sig-Value (SEQUENCE { INTEGER r, INTEGER s }, what tpm2_sign -f plain writes) to the
 * fixed-width r || s that JWS ES256 uses. Node only converts between the two inside crypto.sign/verify
 * with a key it holds; this key never leaves the TPM, so the two integers are unpacked here.
 */
export function derSignatureToJose(der: Uint8Array, size = 32): Uint8Array {
  const fail = () => new TpmError('tpm2_sign wrote a signature that is not a DER ECDSA-Sig-Value');
  let at = 0;
  const byte = () => {
    if (at >= der.length) throw fail();
    return der[at++];
  };
  const length = () => {
    const first = byte();
    if (first < 0x80) return first;
    let n = 0;
    for (let i = 0; i < (first & 0x7f); i++) n = (n << 8) | byte();
    return n;
  };
  if (byte() !== 0x30) throw fail();
  length();
  const out = new Uint8Array(2 * size);
  for (const offset of [0, size]) {
    if (byte() !== 0x02) throw fail();
    const len = length();
    let int = der.slice(at, at + len);
    at += len;
    while (int.length > size && int[0] === 0) int = int.slice(1);
    if (int.length > size || at > der.length) throw fail();
    out.set(int, offset + size - int.length);
  }
  return out;
}
