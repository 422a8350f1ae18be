import type { z } from 'zod';
import type { Prng } from './prng.js';

/**
 * Valid-looking values generated from the protocol's zod (v4) schemas by walking their definitions.
 * Strings are picked from a pool of realistic candidates (names of existing resources, digests,
 * images, CIDRs, timestamps...) and checked against the leaf schema itself (regexes, lengths and
 * refinements included), so most generated bodies pass validation and their mutations reach the
 * code behind it. Refinements across fields may still fail: such bodies are fuzz input too.
 */

type Def = {
  type: string;
  checks?: { _zod: { def: Record<string, unknown> } }[];
  [k: string]: unknown;
};

export interface GenContext {
  rng: Prng;
  /** Names of resources that exist (or may): references in bodies point at them often. `key` is `parent.key`. */
  names(key: string): string[];
  /** A fresh name nobody used yet (metadata.name of creates). */
  fresh(): string;
}

const def = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;
const checks = (d: Def) => (d.checks ?? []).map((c) => c._zod.def);

const HEX64 = 'a'.repeat(16) + 'b'.repeat(16) + '0123456789abcdef'.repeat(2);
/** Strings that satisfy the protocol's regexes and formats; each leaf takes the first that parses. */
function stringPool(ctx: GenContext, key: string): string[] {
  const r = ctx.rng;
  const k = key.toLowerCase().split('.').pop() ?? '';
  const byKey: string[] = [];
  if (/image/.test(k)) byKey.push(`127.0.0.1:9/edge/os:${r.int(1, 9)}.0@sha256:${HEX64}`, '127.0.0.1:9/edge/os:1.0');
  if (/digest/.test(k)) byKey.push(`sha256:${HEX64}`);
  if (/version/.test(k)) byKey.push(r.pick(['v1.30.2+k3s1', 'v1.29.4+rke2r1', 'v1.30.1', '1.0.0']));
  if (/cidr/.test(k)) byKey.push(r.pick(['10.42.0.0/16', '10.43.0.0/16', '192.168.0.0/24']));
  if (/timezone|tz/.test(k)) byKey.push(r.pick(['Europe/Paris', 'UTC', 'America/New_York']));
  if (/duration|length|every/.test(k)) byKey.push(r.pick(['4h', '90m', '1h30m']));
  if (/max|unavailable|percent|threshold|budget|size/.test(k)) byKey.push(r.pick(['25%', '1', '100%']));
  if (/time|at$|since|until|start|end/.test(k)) byKey.push(new Date(Date.now() + r.int(-86_400, 86_400) * 1000).toISOString());
  if (/uid|uuid/.test(k)) byKey.push(`${r.hex(8)}-${r.hex(4)}-4${r.hex(3)}-8${r.hex(3)}-${r.hex(12)}`);
  if (/email/.test(k)) byKey.push('fuzz@example.com');
  if (/url|endpoint|server/.test(k)) byKey.push('https://127.0.0.1:6443', '127.0.0.1');
  if (/ip|address|gateway|dns/.test(k)) byKey.push('10.0.0.5', '10.0.0.0/24');
  if (/^x$/.test(k)) byKey.push('A'.repeat(43));
  if (/cert|pem|ca/.test(k)) byKey.push('-----BEGIN CERTIFICATE-----\nMIIBfuzz\n-----END CERTIFICATE-----');
  if (/code/.test(k)) byKey.push('ABCDEFGH');
  if (/data/.test(k)) byKey.push('aGVsbG8=');
  const names = ctx.names(key);
  return [
    ...byKey,
    ...(names.length ? [r.pick(names), r.pick(names)] : []),
    `fz-${r.hex(4)}`,
    r.pick(['a', 'x', 'Normal', 'fuzz text', 'node-role.kubernetes.io/edge', 'A_1', 'ok']),
    `sha256:${HEX64}`,
    'v1.30.2+k3s1',
    '10.42.0.0/16',
    '10.0.0.5',
    '4h',
    '25%',
    new Date().toISOString(),
    'https://127.0.0.1:6443',
    `${r.hex(8)}-${r.hex(4)}-4${r.hex(3)}-8${r.hex(3)}-${r.hex(12)}`,
    'fuzz@example.com',
    'ABCDEFGH',
    'aGVsbG8=',
    'A'.repeat(43),
    'Europe/Paris',
    '127.0.0.1:9/edge/os:1.0',
  ];
}

function genString(s: z.ZodType, d: Def, ctx: GenContext, key: string): string {
  const pool = stringPool(ctx, key);
  for (const c of pool) if (s.safeParse(c).success) return c;
  const min = checks(d).find((c) => c.check === 'min_length')?.minimum as number | undefined;
  const padded = 'a'.repeat(Math.max(min ?? 1, 1));
  return s.safeParse(padded).success ? padded : pool[0]!;
}

function genNumber(d: Def, ctx: GenContext): number {
  let min = -5;
  let max = 50;
  let int = false;
  for (const c of checks(d)) {
    if (c.check === 'number_format' && String(c.format).includes('int')) int = true;
    if (c.check === 'greater_than') min = Math.max((c.value as number) + (c.inclusive ? 0 : 1), min === -5 ? -Infinity : min);
    if (c.check === 'less_than') max = Math.min((c.value as number) - (c.inclusive ? 0 : 1), max);
  }
  if (!Number.isFinite(min)) min = 0;
  if (max < min) max = min + 10;
  const hi = Math.min(max, min + 20);
  // The smallest value is often the only one that refers to something real (revision 1).
  const n = ctx.rng.chance(0.5) ? Math.ceil(min) : ctx.rng.int(Math.ceil(min), Math.floor(hi));
  return int ? n : n + (ctx.rng.chance(0.3) ? 0.5 : 0);
}

/** One value for `schema`; `key` is the object key it sits under (guides string picks). */
export function generate(schema: z.ZodType, ctx: GenContext, key = '', depth = 0): unknown {
  const d = def(schema);
  const r = ctx.rng;
  switch (d.type) {
    case 'string':
      return genString(schema, d, ctx, key);
    case 'number':
    case 'int':
      return genNumber(d, ctx);
    case 'bigint':
      return r.int(0, 100);
    case 'boolean':
      return r.chance(0.5);
    case 'null':
      return null;
    case 'undefined':
    case 'void':
      return undefined;
    case 'literal':
      return r.pick(d.values as unknown[]);
    case 'enum':
      return r.pick(Object.values(d.entries as Record<string, unknown>));
    case 'optional':
      return depth > 6 || r.chance(0.35) ? undefined : generate(d.innerType as z.ZodType, ctx, key, depth);
    case 'default':
    case 'prefault':
      return r.chance(0.4) ? undefined : generate(d.innerType as z.ZodType, ctx, key, depth);
    case 'nullable':
      return r.chance(0.1) ? null : generate(d.innerType as z.ZodType, ctx, key, depth);
    case 'readonly':
    case 'catch':
    case 'nonoptional':
    case 'success':
      return generate(d.innerType as z.ZodType, ctx, key, depth);
    case 'lazy':
      return depth > 6 ? undefined : generate((d.getter as () => z.ZodType)(), ctx, key, depth + 1);
    case 'pipe':
      return generate(d.in as z.ZodType, ctx, key, depth);
    case 'transform':
      return 'x';
    case 'union': {
      const options = d.options as z.ZodType[];
      // Try a few options: the first whose value parses (unions of a string format and a number, say).
      for (let i = 0; i < 3; i++) {
        const v = generate(r.pick(options), ctx, key, depth + 1);
        if (schema.safeParse(v).success) return v;
      }
      return generate(r.pick(options), ctx, key, depth + 1);
    }
    case 'intersection': {
      const a = generate(d.left as z.ZodType, ctx, key, depth + 1);
      const b = generate(d.right as z.ZodType, ctx, key, depth + 1);
      return a && b && typeof a === 'object' && typeof b === 'object' ? { ...a, ...b } : a;
    }
    case 'tuple':
      return (d.items as z.ZodType[]).map((s) => generate(s, ctx, key, depth + 1));
    case 'array': {
      const cs = checks(d);
      const min = (cs.find((c) => c.check === 'min_length')?.minimum as number | undefined) ?? 0;
      const max = (cs.find((c) => c.check === 'max_length')?.maximum as number | undefined) ?? 3;
      const n = depth > 5 ? min : r.int(min, Math.max(min, Math.min(max, min + 2)));
      return Array.from({ length: n }, () => generate(d.element as z.ZodType, ctx, key, depth + 1)).filter((v) => v !== undefined);
    }
    case 'record': {
      const out: Record<string, unknown> = {};
      const n = depth > 5 ? 0 : r.int(0, 2);
      for (let i = 0; i < n; i++) {
        const k = generate(d.keyType as z.ZodType, ctx, `${key}Key`, depth + 1);
        if (typeof k === 'string') out[k] = generate(d.valueType as z.ZodType, ctx, k, depth + 1);
      }
      return out;
    }
    case 'object': {
      const out: Record<string, unknown> = {};
      // The key path's last two segments (`profile.name`) tell which kind a reference names.
      const parent = key.split('.').pop();
      for (const [k, s] of Object.entries(d.shape as Record<string, z.ZodType>)) {
        const v = generate(s, ctx, parent ? `${parent}.${k}` : k, depth + 1);
        if (v !== undefined) out[k] = v;
      }
      return out;
    }
    case 'date':
      return new Date().toISOString();
    default:
      // any, unknown, custom, template_literal...: something small and harmless.
      return r.pick([{}, 'x', 1, true]);
  }
}

/** Tries a few times for a value the schema accepts; returns the last try otherwise. */
export function generateValid(schema: z.ZodType, ctx: GenContext, tries = 6): { value: unknown; valid: boolean } {
  let value: unknown;
  for (let i = 0; i < tries; i++) {
    value = generate(schema, ctx);
    if (schema.safeParse(value).success) return { value, valid: true };
  }
  return { value, valid: false };
}
