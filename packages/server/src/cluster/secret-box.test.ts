import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSecretBox, SecretBox } from './secret-box.js';

describe('SecretBox', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-secret-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('seals with AES-256-GCM bound to the row, and opens only there', () => {
    const box = loadSecretBox(dir, {});
    const sealed = box.seal('join-me', 'prod/join-token');
    expect(sealed).not.toContain('join-me');
    expect(box.seal('join-me', 'prod/join-token')).not.toBe(sealed); // fresh IV each time
    expect(box.open(sealed, 'prod/join-token')).toBe('join-me');
    expect(() => box.open(sealed, 'other/join-token')).toThrow();
    // One ciphertext byte flipped (editing the base64 text's last characters can leave the bytes unchanged).
    const [v, iv, tag, ct] = sealed.split('.');
    const bytes = Buffer.from(ct, 'base64url');
    bytes[0] ^= 0x01;
    const tampered = [v, iv, tag, bytes.toString('base64url')].join('.');
    expect(tampered).not.toBe(sealed);
    expect(() => box.open(tampered, 'prod/join-token')).toThrow();
  });

  it('keeps its key in <dataDir>/secret.key (0600) across starts, or takes EDGEPLANE_SECRET_KEY', () => {
    const sealed = loadSecretBox(dir, {}).seal('x', 'a/b');
    expect(statSync(join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
    expect(loadSecretBox(dir, {}).open(sealed, 'a/b')).toBe('x');
    const fromEnv = loadSecretBox(dir, { EDGEPLANE_SECRET_KEY: 'ab'.repeat(32) });
    expect(() => fromEnv.open(sealed, 'a/b')).toThrow();
    expect(() => loadSecretBox(dir, { EDGEPLANE_SECRET_KEY: 'short' })).toThrow(/32-byte/);
    expect(() => new SecretBox(Buffer.alloc(16))).toThrow();
  });
});
