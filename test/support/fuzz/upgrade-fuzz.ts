import { randomUUID } from 'node:crypto';
import { CONNECT_AUDIENCE, REGISTER_AUDIENCE } from '@edgeplane/protocol';
import { exportJWK, generateKeyPair } from 'jose';
import WebSocket from 'ws';
import { pct, weirdString } from './mutate.js';
import type { Prng } from './prng.js';

/**
 * WebSocket upgrades with crafted credentials: agent connect tokens that are correctly signed by a
 * registered device key but carry hostile claims (sub, aud, iat, exp, jti of every type and size,
 * control characters), unsigned and malformed tokens, and watch upgrades with garbage kinds and
 * subprotocols. The answer is read off the upgrade: a 101, or an HTTP error whose status must not be 5xx.
 */
export class FuzzKey {
  private constructor(
    private readonly key: CryptoKey,
    readonly jwk: { kty: 'OKP'; crv: 'Ed25519'; x: string },
  ) {}

  static async create(): Promise<FuzzKey> {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const jwk = (await exportJWK(publicKey)) as { x: string };
    return new FuzzKey(privateKey as CryptoKey, { kty: 'OKP', crv: 'Ed25519', x: jwk.x });
  }

  /** A compact JWS over any header and payload (jose's SignJWT would refuse most of the hostile claims). */
  async sign(header: Record<string, unknown>, payload: unknown): Promise<string> {
    const enc = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const input = `${enc(header)}.${enc(payload)}`;
    const sig = await crypto.subtle.sign('Ed25519', this.key, Buffer.from(input));
    return `${input}.${Buffer.from(sig).toString('base64url')}`;
  }
}

export interface UpgradeAttempt {
  index: number;
  path: string;
  headers: Record<string, string>;
  protocols?: string[];
  what: string;
}

function claimValue(r: Prng, good: unknown): unknown {
  return r.weighted<() => unknown>([
    [6, () => good],
    [1, () => undefined],
    [1, () => null],
    [1, () => weirdString(r).slice(0, 2000)],
    [1, () => r.pick<unknown>([0, -1, 1.5, 2 ** 53, 1e21, -1e21, '1', [], {}, [good], { v: good }, true])],
  ])();
}

/** Attempt `index`: a pure function of the PRNG and the registered device's host name. */
export async function planUpgrade(r: Prng, index: number, key: FuzzKey, host: string, adminToken: string): Promise<UpgradeAttempt> {
  if (r.chance(0.25)) {
    // The watch endpoint: kinds and subprotocols from the outside.
    const kinds = r.pick([
      '',
      'EdgeHost',
      'edgehosts,clusters',
      '__proto__',
      'constructor,valueOf',
      '%00',
      pct(weirdString(r).slice(0, 200)),
      'x,'.repeat(500),
    ]);
    const auth = r.weighted<() => Record<string, string>>([
      [6, () => ({ authorization: `Bearer ${adminToken}` })],
      [1, () => ({})],
      [1, () => ({ authorization: `Bearer ${adminToken}x` })],
    ])();
    const protocols = r.chance(0.3)
      ? r.pick([['edgeplane.watch'], [`edgeplane.token.${adminToken}`], ['a'.repeat(3000)], ['edgeplane.token.x', 'edgeplane.token.y'], ['__proto__']])
      : undefined;
    return { index, path: `/api/v1/watch${kinds ? `?kinds=${kinds}` : ''}`, headers: auth, protocols, what: 'watch upgrade' };
  }
  const now = Math.floor(Date.now() / 1000);
  const header = r.chance(0.85)
    ? { alg: 'EdDSA' }
    : r.pick<Record<string, unknown>>([{ alg: 'none' }, { alg: 'HS256' }, { alg: 'EdDSA', crit: ['x'] }, {}, { alg: 1 }]);
  const payload: Record<string, unknown> = {
    sub: claimValue(r, r.chance(0.8) ? host : r.pick(['__proto__', 'constructor', 'admin', 'a'.repeat(300), `${host}\u0000`])),
    aud: claimValue(r, r.chance(0.85) ? CONNECT_AUDIENCE : r.pick([REGISTER_AUDIENCE, [CONNECT_AUDIENCE, 'x'], ''])),
    iat: claimValue(r, now - r.int(0, 30)),
    exp: claimValue(r, now + r.int(30, 280)),
    jti: claimValue(r, randomUUID()),
  };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  let body: unknown = r.chance(0.03) ? weirdString(r) : payload;
  // An own "__proto__" claim can only be written as text.
  if (r.chance(0.05)) body = JSON.stringify(payload).replace(/^\{/, `{"__proto__":{"sub":${JSON.stringify(host)},"admin":true},`);
  let token = await key.sign(header, body);
  let what = `connect token ${JSON.stringify(header)} ${JSON.stringify(payload).slice(0, 300)}`;
  if (r.chance(0.1)) {
    const broken = r.pick([
      () => token.split('.').slice(0, 2).join('.'),
      () => `${token.split('.').slice(0, 2).join('.')}.`,
      () => `${token}.x`,
      () => token.replace(/\./g, '..'),
      () => `${token.slice(0, -3)}AAA`,
      () => 'a.b.c',
      () => '...',
      () => Buffer.from(JSON.stringify(payload)).toString('base64'),
      () => `${token}${'A'.repeat(r.int(1000, 9000))}`,
    ]);
    token = broken();
    what += ' (broken encoding)';
  }
  const authorization = r.weighted<() => string>([
    [20, () => `Bearer ${token}`],
    [1, () => `bearer ${token}`],
    [1, () => `Bearer  ${token} `],
    [1, () => token],
    [1, () => `Bearer ${adminToken}`],
    [1, () => 'Bearer '],
  ])();
  return { index, path: '/agent/v1/connect', headers: { authorization }, what };
}

/** Attempts one upgrade; returns the HTTP status (101 when it opened) or an error text. */
export function tryUpgrade(url: string, a: UpgradeAttempt): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(`${url.replace(/^http/, 'ws')}${a.path}`, a.protocols, { headers: a.headers, handshakeTimeout: 15_000 });
    } catch (err) {
      resolve({ status: 0, body: '', error: `client refused: ${(err as Error).message}` });
      return;
    }
    ws.on('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', (err) => resolve({ status: 0, body: '', error: String(err) }));
  });
}
