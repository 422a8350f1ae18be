import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { CONNECT_AUDIENCE, type Inventory, REGISTER_AUDIENCE } from '@edgeplane/protocol';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import WebSocket from 'ws';

/**
 * A hand-driven device for server tests: its own Ed25519 key (or, from createP256, a P-256 key that
 * claims to live in a TPM, with a made-up endorsement key: what a TPM agent sends, minus the TPM),
 * signed proofs and connect tokens.
 */
export class TestDevice {
  private constructor(
    readonly uid: string,
    private key: CryptoKey,
    readonly jwk: { kty: 'OKP'; crv: 'Ed25519'; x: string } | { kty: 'EC'; crv: 'P-256'; x: string; y: string },
    /** `identity` for the registration body: set for a P-256 (TPM-claiming) device. */
    readonly identity?: { kind: 'tpm'; ekPublicKey: string },
  ) {}

  static async create(uid: string = randomUUID()): Promise<TestDevice> {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const jwk = (await exportJWK(publicKey)) as { x: string };
    return new TestDevice(uid, privateKey as CryptoKey, { kty: 'OKP', crv: 'Ed25519', x: jwk.x });
  }

  /** A device presenting an ES256 key and `identity: tpm` with an RSA endorsement key of its own making. */
  static async createP256(uid: string = randomUUID()): Promise<TestDevice> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = (await exportJWK(publicKey)) as { x: string; y: string };
    const ek = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    return new TestDevice(uid, privateKey as CryptoKey, { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, { kind: 'tpm', ekPublicKey: ek });
  }

  /** Same device UID, new key: what a re-imaged or impostor device presents. */
  async withNewKey(): Promise<TestDevice> {
    const other = await TestDevice.create(this.uid);
    return other;
  }

  sign(claims: { sub: string; aud: string; lifetime?: number; jti?: string; iat?: number }): Promise<string> {
    const iat = claims.iat ?? Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: this.jwk.kty === 'EC' ? 'ES256' : 'EdDSA' })
      .setSubject(claims.sub)
      .setAudience(claims.aud)
      .setIssuedAt(iat)
      .setExpirationTime(iat + (claims.lifetime ?? 60))
      .setJti(claims.jti ?? randomUUID())
      .sign(this.key);
  }

  inventory(): Inventory {
    const h = createHash('sha256').update(this.uid).digest();
    return {
      hostname: `dev-${this.uid.slice(0, 8)}`,
      machineId: this.uid.replace(/-/g, ''),
      dmi: { productUuid: this.uid },
      cpu: { model: 'Test CPU', cores: 4, arch: 'x64' },
      memoryBytes: 8 * 2 ** 30,
      disks: [],
      // A device on its site's network: an address other nodes reach it at (a cluster's endpoint).
      nics: [
        {
          name: 'eth0',
          mac: `52:54:00:${[...h.subarray(0, 3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
          addresses: [`10.${h[0]}.${h[1]}.${(h[2] % 250) + 2}/16`],
        },
      ],
      os: { name: 'Test OS', version: '1', kernel: '6.1' },
      simulated: true,
    };
  }

  async registerBody(token: string, extra: Record<string, unknown> = {}) {
    return {
      token,
      deviceUid: this.uid,
      publicKey: this.jwk,
      ...(this.identity ? { identity: this.identity } : {}),
      proof: await this.sign({ sub: this.uid, aud: REGISTER_AUDIENCE }),
      inventory: this.inventory(),
      agentVersion: 'test-1',
      ...extra,
    };
  }

  /** Body of `POST /agent/v1/pairings` (a pairing start needs no credential, only a proof of the key). */
  async pairingStartBody(extra: Record<string, unknown> = {}) {
    return {
      deviceUid: this.uid,
      publicKey: this.jwk,
      proof: await this.sign({ sub: this.uid, aud: REGISTER_AUDIENCE }),
      inventory: this.inventory(),
      agentVersion: 'test-1',
      ...extra,
    };
  }

  connectToken(host: string, opts: { lifetime?: number; jti?: string; iat?: number } = {}): Promise<string> {
    return this.sign({ sub: host, aud: CONNECT_AUDIENCE, ...opts });
  }
}

export async function register(server: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server}/agent/v1/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** Opens a channel; resolves with the socket and collected messages, or rejects with the HTTP status and error code. */
export function connect(server: string, token: string): Promise<{ ws: WebSocket; messages: any[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.replace(/^http/, 'ws')}/agent/v1/connect`, { headers: { authorization: `Bearer ${token}` } });
    const messages: any[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
    ws.on('open', () => resolve({ ws, messages }));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body: JSON.parse(body || '{}') })));
    });
    ws.on('error', reject);
  });
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
