import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { create as createTar } from 'tar';
import { stringify as toYaml } from 'yaml';
import type { AgentConfig } from '../config.js';
import { IDENTITY_FILE } from '../identity.js';

/** What a bundle collects. Everything passes through redaction before it is written. */
export interface BundleSources {
  config: AgentConfig;
  /** name -> path of log files (the agent's own log is "agent"). */
  logFiles: Record<string, string>;
  /** Agent state: host name, connection, generation, manager status. */
  state: () => Record<string, unknown>;
  inventory: () => Promise<unknown>;
}

export const REDACTED = '[REDACTED]';
const SECRET_KEY = /(token|secret|password|passwd|credential|private|apikey|api_key|^d$)/i;
/** Secret shapes that may appear in free text (logs): Edgeplane tokens, bearer headers, PEM keys. */
const SECRET_TEXT = [
  /\bep(?:r?t|at)_[A-Za-z0-9_-]{8,}/g,
  /(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
];
/** `password=...`, `token: ...` and the like in log lines and config files. */
const SECRET_ASSIGNMENT = /\b((?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*)(?!\[REDACTED\])[^\s,;"']+/gi;
/** Log bytes taken per file (the tail). */
const LOG_TAIL_BYTES = 2 * 1024 * 1024;

/** Replaces values under secret-looking keys, at any depth. Collects the replaced strings into `found`. */
export function redactObject(value: unknown, found: Set<string> = new Set()): unknown {
  if (Array.isArray(value)) return value.map((v) => redactObject(v, found));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => {
        if (SECRET_KEY.test(k) && v !== undefined && v !== null && typeof v !== 'boolean') {
          if (typeof v === 'string') found.add(v);
          return [k, REDACTED];
        }
        return [k, redactObject(v, found)];
      }),
    );
  }
  return value;
}

/** Removes known secret values and secret-shaped strings from text. */
export function redactText(text: string, known: Iterable<string>): string {
  let out = text;
  for (const secret of known) if (secret.length >= 6) out = out.split(secret).join(REDACTED);
  out = out
    .replace(SECRET_TEXT[0], REDACTED)
    .replace(SECRET_TEXT[1], `$1${REDACTED}`)
    .replace(SECRET_TEXT[2], REDACTED)
    .replace(SECRET_ASSIGNMENT, `$1${REDACTED}`);
  return out;
}

async function tail(file: string, bytes: number): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - bytes);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Builds a support bundle: a gzip'd tar stream of the agent's state, identity (public part only),
 * last spec, config, logs and inventory, with secrets redacted. Files are staged in a temporary
 * directory, which is removed when the stream ends.
 */
export async function createSupportBundle(src: BundleSources): Promise<Readable> {
  const stage = await mkdtemp(join(tmpdir(), 'edgeplane-bundle-'));
  const root = join(stage, 'support-bundle');
  await mkdir(join(root, 'logs'), { recursive: true });
  const secrets = new Set<string>();
  const configOut = redactObject(src.config, secrets);
  const put = (name: string, text: string) => writeFile(join(root, name), redactText(text, secrets), { mode: 0o600 });
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

  await put('config.yaml', toYaml(configOut));
  const files: string[] = ['config.yaml'];
  const identityFile = join(src.config.dataDir, IDENTITY_FILE);
  if (existsSync(identityFile)) {
    const identity = JSON.parse(await readFile(identityFile, 'utf8')) as { privateKey?: { d?: string; x?: string } };
    // Only the public half: drop the private scalar `d` entirely.
    const { privateKey, ...rest } = identity;
    if (privateKey?.d) secrets.add(privateKey.d);
    await put('identity.json', json({ ...rest, publicKey: privateKey ? { kty: 'OKP', crv: 'Ed25519', x: privateKey.x } : undefined }));
    files.push('identity.json');
  }
  for (const name of ['spec.json', 'events.json']) {
    const f = join(src.config.dataDir, name);
    if (existsSync(f)) {
      // The stored spec carries secrets under JSON keys (a cluster's join token, addon chart values):
      // redact it as an object, which also adds those values to `secrets` for the logs below.
      const text = await readFile(f, 'utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      await put(name, parsed === undefined ? text : json(redactObject(parsed, secrets)));
      files.push(name);
    }
  }
  await put('state.json', json(redactObject(src.state(), secrets)));
  files.push('state.json');
  try {
    await put('inventory.json', json(await src.inventory()));
    files.push('inventory.json');
  } catch (err) {
    await put('inventory.error.txt', `${(err as Error).message}\n`);
  }
  for (const [name, path] of Object.entries(src.logFiles)) {
    if (!existsSync(path)) continue;
    // `vm:<domain>` (a VM's serial console) becomes logs/vm-<domain>.log: no colons in archive names.
    const file = `logs/${name.replace(/:/g, '-')}.log`;
    await put(file, await tail(path, LOG_TAIL_BYTES));
    files.push(file);
  }
  await put(
    'README.txt',
    `Edgeplane support bundle\ncreated: ${new Date().toISOString()}\nfiles: ${files.join(', ')}\n` +
      `Secrets (tokens, keys, passwords) are replaced by ${REDACTED}.\n`,
  );
  const stream = createTar({ gzip: true, cwd: stage, portable: true }, ['support-bundle']) as unknown as Readable;
  const cleanup = () => void rm(stage, { recursive: true, force: true });
  stream.on('end', cleanup);
  stream.on('error', cleanup);
  stream.on('close', cleanup);
  return stream;
}
