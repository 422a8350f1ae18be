import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  CONNECT_AUDIENCE,
  canonicalDeviceKey,
  type DeviceIdentityClaim,
  DevicePublicKey,
  deviceKeyFingerprintInput,
  HostState,
  Name,
  P256PublicKey,
  REGISTER_AUDIENCE,
} from '@edgeplane/protocol';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from './atomic-file.js';
import type { Device } from './device/device.js';
import { ekFingerprint, Tpm, type TpmKeyBlobs } from './identity/tpm-key.js';

export const IDENTITY_FILE = 'identity.json';
/** Lifetime of device-signed tokens; well under DEVICE_TOKEN_MAX_LIFETIME_SECONDS. */
const TOKEN_LIFETIME_SECONDS = 60;

/** What the server answered at registration, bound to the server it came from. */
export const Registration = z.object({
  server: z.string(),
  hostName: Name,
  uid: z.string(),
  deviceUid: z.string(),
  connectPath: z.string().optional(),
  state: HostState.optional(),
  registeredAt: z.string(),
});
export type Registration = z.infer<typeof Registration>;

const PrivateJwk = z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string(), d: z.string() });

/** A TPM-held key: its wrapped blobs (loadable only by the TPM that made them), public key and the TPM's endorsement. */
const TpmKeyFile = z.object({
  public: z.string(),
  private: z.string(),
  publicKey: P256PublicKey,
  ekPublicKey: z.string(),
  ekCertificate: z.string().optional(),
});

/** Exactly one of privateKey (identity: file) and tpm (identity: tpm). */
const IdentityFile = z
  .object({
    version: z.literal(1),
    privateKey: PrivateJwk.optional(),
    tpm: TpmKeyFile.optional(),
    createdAt: z.string(),
    registration: Registration.optional(),
  })
  .refine((f) => (f.privateKey === undefined) !== (f.tpm === undefined), { message: 'needs exactly one of privateKey and tpm', path: ['privateKey'] });
type IdentityFile = z.infer<typeof IdentityFile>;

export interface IdentityOptions {
  /** The device whose TPM holds (or is to hold) the key; without it only a file key can be used. */
  device?: Pick<Device, 'exec'>;
  /** Told once which kind of key a new identity got (the agent's pino logger). */
  logger?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/**
 * A new identity in the TPM, or undefined (with a warning) when the TPM refuses: an owner hierarchy
 * with a password, a TPM in dictionary-attack lockout. The device then gets a file key and registers as
 * identity: file, which a token with requireTpm refuses, so the operator sees it.
 */
async function createInTpm(tpm: Tpm, options: IdentityOptions): Promise<IdentityFile | undefined> {
  try {
    const { blobs, publicKey } = await tpm.createKey();
    const endorsement = await tpm.endorsement();
    options.logger?.info({ ekFingerprint: ekFingerprint(endorsement.ekPublicKey) }, 'created the device identity key in the TPM');
    return { version: 1, tpm: { ...blobs, publicKey, ...endorsement }, createdAt: new Date().toISOString() };
  } catch (err) {
    options.logger?.warn({ err: (err as Error).message }, 'the TPM 2.0 refused to make the identity key; using a file key (identity: file)');
    return undefined;
  }
}

/** Signs a JWS signing input; the file key through jose, the TPM key through tpm2-tools. */
type Signer = { kind: 'file'; key: CryptoKey } | { kind: 'tpm'; tpm: Tpm; blobs: TpmKeyBlobs };

/** Server URLs compare without trailing slashes, so `--server http://x/` and `http://x` are the same server. */
export function normalizeServerUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

/**
 * The device's own key pair and its registration, persisted in `<dataDir>/identity.json` (mode 0600).
 * A device with a TPM 2.0 gets its key inside the TPM (identity: tpm, ES256; see identity/tpm-key.ts):
 * the file then holds only blobs that TPM alone can load, so a copy of the data dir on another
 * machine cannot sign. Without a TPM the key is Ed25519 in the file (identity: file, EdDSA). The kind
 * is chosen once, when the key is made: a key is never replaced (a new key would make the server see
 * a different device), and a TPM key that no longer loads is an error, never a reason to fall back to a
 * file key. A corrupt file is an error rather than a reason to start over, for the same reason.
 */
export class DeviceIdentity {
  private constructor(
    private readonly file: string,
    private data: IdentityFile,
    private readonly signer: Signer,
    readonly publicKey: DevicePublicKey,
  ) {}

  static async loadOrCreate(dataDir: string, options: IdentityOptions = {}): Promise<DeviceIdentity> {
    const file = join(dataDir, IDENTITY_FILE);
    const raw = await readJsonFile(file);
    const tpm = options.device ? new Tpm(options.device, dataDir) : undefined;
    let data: IdentityFile;
    if (raw === undefined) {
      const inTpm = tpm && (await tpm.present()) ? await createInTpm(tpm, options) : undefined;
      if (inTpm) data = inTpm;
      else {
        const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
        const jwk = await exportJWK(privateKey);
        data = { version: 1, privateKey: PrivateJwk.parse(jwk), createdAt: new Date().toISOString() };
        options.logger?.info({}, 'no TPM 2.0 found: the device identity key is a file key (identity.json)');
      }
      await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`);
    } else {
      const parsed = IdentityFile.safeParse(raw);
      if (!parsed.success)
        throw new Error(`${file} is not a valid agent identity: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      data = parsed.data;
    }
    if (data.tpm) {
      if (!tpm) throw new Error(`${file} holds a TPM key, and this agent has no device to reach the TPM with`);
      const stored = data.tpm;
      const loaded = await tpm.publicKey(stored).catch((err: Error) => {
        throw new Error(
          `${file} holds a key this device's TPM cannot load (${err.message}): the data dir was made on another machine, or this TPM was cleared. ` +
            'A copied identity cannot act as the device it came from; to make this device a new one, remove identity.json (an operator then approves its key).',
        );
      });
      if (canonicalDeviceKey(loaded) !== canonicalDeviceKey(stored.publicKey)) throw new Error(`${file}: the TPM loaded a key that is not the one recorded`);
      return new DeviceIdentity(file, data, { kind: 'tpm', tpm, blobs: stored }, stored.publicKey);
    }
    const privateKey = data.privateKey as z.infer<typeof PrivateJwk>;
    const key = (await importJWK({ ...privateKey, alg: 'EdDSA' }, 'EdDSA')) as CryptoKey;
    const publicKey = DevicePublicKey.parse({ kty: 'OKP', crv: 'Ed25519', x: privateKey.x });
    return new DeviceIdentity(file, data, { kind: 'file', key }, publicKey);
  }

  /** Where the key lives: `tpm` (inside the TPM 2.0, ES256) or `file` (Ed25519 in identity.json, EdDSA). */
  get kind(): 'tpm' | 'file' {
    return this.signer.kind;
  }

  /** What registration says about the key: the TPM's endorsement for a TPM key; nothing for a file key (servers before TPM support take that as file). */
  get claim(): DeviceIdentityClaim | undefined {
    const tpm = this.data.tpm;
    return tpm
      ? { kind: 'tpm', ekPublicKey: tpm.ekPublicKey, ...(tpm.ekCertificate ? { ekCertificate: tpm.ekCertificate } : {}), keyPublic: tpm.public }
      : undefined;
  }

  /**
   * Activates a credential the server made for this TPM's EK and this key (TpmActivationRequired):
   * the secret it recovers (base64) proves the key is in this TPM. A file key has nothing to activate.
   */
  async activateCredential(credential: string): Promise<string> {
    if (this.signer.kind !== 'tpm') throw new Error('a file key cannot activate a TPM credential');
    return Buffer.from(await this.signer.tpm.activateCredential(this.signer.blobs, Buffer.from(credential, 'base64'))).toString('base64');
  }

  /** sha256 (hex) of the public key as the server shows it (status.keyFingerprint / pendingKeyFingerprint). */
  get fingerprint(): string {
    return createHash('sha256').update(deviceKeyFingerprintInput(this.publicKey)).digest('hex');
  }

  get registration(): Registration | undefined {
    return this.data.registration;
  }

  /** The registration for `server`, if this device registered there; a different server means registering anew. */
  registrationFor(server: string): Registration | undefined {
    const reg = this.data.registration;
    return reg && reg.server === normalizeServerUrl(server) ? reg : undefined;
  }

  async saveRegistration(reg: Omit<Registration, 'server' | 'registeredAt'> & { server: string; registeredAt?: string }): Promise<Registration> {
    const registration = Registration.parse({ ...reg, server: normalizeServerUrl(reg.server), registeredAt: reg.registeredAt ?? new Date().toISOString() });
    this.data = { ...this.data, registration };
    await writeFileAtomic(this.file, `${JSON.stringify(this.data, null, 2)}\n`);
    return registration;
  }

  /** Registration proof: shows the server this request holds the private key of `publicKey`. */
  signRegistrationProof(deviceUid: string): Promise<string> {
    return this.sign(deviceUid, REGISTER_AUDIENCE);
  }

  /** Connect token; the jti is fresh every time because the server refuses a replayed token. */
  signConnectToken(hostName: string): Promise<string> {
    return this.sign(hostName, CONNECT_AUDIENCE);
  }

  private async sign(subject: string, audience: string): Promise<string> {
    const iat = Math.floor(Date.now() / 1000);
    const claims = { sub: subject, aud: audience, iat, exp: iat + TOKEN_LIFETIME_SECONDS, jti: randomUUID() };
    if (this.signer.kind === 'file')
      return new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
        .setSubject(claims.sub)
        .setAudience(claims.aud)
        .setIssuedAt(claims.iat)
        .setExpirationTime(claims.exp)
        .setJti(claims.jti)
        .sign(this.signer.key);
    // jose signs only with keys it holds; the TPM key signs outside it, so the compact JWS (RFC 7515
    // 7.1: header.payload.signature, base64url) is put together here. The server verifies it with jose.
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const input = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64(claims)}`;
    const signature = await this.signer.tpm.sign(this.signer.blobs, Buffer.from(input));
    return `${input}.${Buffer.from(signature).toString('base64url')}`;
  }
}
