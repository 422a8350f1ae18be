import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { CONNECT_AUDIENCE, DevicePublicKey, HostState, Name, REGISTER_AUDIENCE } from '@edgeplane/protocol';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from './atomic-file.js';

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

const IdentityFile = z.object({
  version: z.literal(1),
  privateKey: PrivateJwk,
  createdAt: z.string(),
  registration: Registration.optional(),
});
type IdentityFile = z.infer<typeof IdentityFile>;

/** Server URLs compare without trailing slashes, so `--server http://x/` and `http://x` are the same server. */
export function normalizeServerUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

/**
 * The device's own Ed25519 key pair and its registration, persisted in `<dataDir>/identity.json`
 * (mode 0600). The key is generated once and never replaced: a new key would make the server see a
 * different device. A corrupt file is an error rather than a reason to start over, for the same reason.
 */
export class DeviceIdentity {
  private constructor(
    private readonly file: string,
    private data: IdentityFile,
    private readonly privateKey: CryptoKey,
    readonly publicKey: DevicePublicKey,
  ) {}

  static async loadOrCreate(dataDir: string): Promise<DeviceIdentity> {
    const file = join(dataDir, IDENTITY_FILE);
    const raw = await readJsonFile(file);
    let data: IdentityFile;
    if (raw === undefined) {
      const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      const jwk = await exportJWK(privateKey);
      data = { version: 1, privateKey: PrivateJwk.parse(jwk), createdAt: new Date().toISOString() };
      await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`);
    } else {
      const parsed = IdentityFile.safeParse(raw);
      if (!parsed.success)
        throw new Error(`${file} is not a valid agent identity: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      data = parsed.data;
    }
    const key = (await importJWK({ ...data.privateKey, alg: 'EdDSA' }, 'EdDSA')) as CryptoKey;
    const publicKey = DevicePublicKey.parse({ kty: 'OKP', crv: 'Ed25519', x: data.privateKey.x });
    return new DeviceIdentity(file, data, key, publicKey);
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

  private sign(subject: string, audience: string): Promise<string> {
    const iat = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + TOKEN_LIFETIME_SECONDS)
      .setJti(randomUUID())
      .sign(this.privateKey);
  }
}
