import type { Prng } from './prng.js';

/**
 * Mutations of valid JSON values: each changes one place (or the whole document) the way a careless
 * client or an attacker would. Raw text results (bad JSON, duplicate keys, number literals beyond
 * double precision) come back as `raw`.
 */
export type Mutated = { value: unknown; raw?: undefined; what: string } | { raw: string; value?: undefined; what: string };

export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'valueOf', 'toString', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__'];

export const NUMBERS: readonly number[] = [
  -1,
  0,
  -0,
  0.5,
  1.5,
  -0.000001,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  -(2 ** 31) - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  Number.MAX_SAFE_INTEGER,
  1e21,
  1e308,
  -1e308,
  5e-324,
];
/** Number literals JSON.stringify cannot write: beyond double range, or longer than any column. */
const RAW_NUMBERS = ['1e400', '-1e400', '9'.repeat(400), '0.1e-400', `1${'0'.repeat(30)}`, '18446744073709551616', '-0.0'];

/** Percent-encodes every byte but unreserved ones; unlike encodeURIComponent it takes lone surrogates (as U+FFFD). */
export function pct(s: string): string {
  let out = '';
  for (const b of Buffer.from(s)) out += /[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`;
  return out;
}

/** Hostile strings: control characters, unicode edge cases, traversal, injection, prototype names, lengths. */
export function weirdString(r: Prng): string {
  r.taint();
  return r.weighted<() => string>([
    [3, () => `a\u0000b`],
    [2, () => '\u0000'],
    [2, () => `x${String.fromCharCode(r.int(1, 31))}y`],
    [1, () => '\u007f'],
    [1, () => 'line\nbreak\ttab\r'],
    [1, () => '\u202eevil\u202c'],
    [1, () => '\ud800'],
    [1, () => '\udfff\ud800'],
    [1, () => '😀'.repeat(r.int(1, 100))],
    [1, () => '\ufeff\u200b\u00a0'],
    [1, () => 'ǅ İ ß ﬃ'],
    [1, () => 'É'.normalize('NFD')],
    [1, () => '../../etc/passwd'],
    [1, () => '..%2f..%2fsecret.key'],
    [1, () => "' OR 1=1 --"],
    [1, () => '"; DROP TABLE hosts; --'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup is the hostile input
    [1, () => '${jndi:ldap://x}{{7*7}}<script>'],
    [2, () => r.pick(PROTO_KEYS)],
    [1, () => ''],
    [1, () => ' '],
    [2, () => 'a'.repeat(r.pick([64, 65, 129, 254, 257, 4097, 65537]))],
    [1, () => 'x'.repeat(r.int(100_000, 300_000))],
    [1, () => 'A'.repeat(43)],
    [1, () => '2030-01-01T00:00:00.123456789012345678901234567890+00:00'],
    [1, () => '9999-12-31T23:59:59Z'],
    [1, () => '0000-00-00T00:00:00Z'],
    [1, () => '-1'],
    [1, () => '1e999'],
    [1, () => 'NaN'],
    [1, () => 'true'],
    [1, () => 'null'],
  ])();
}

export function weirdNumber(r: Prng): number {
  r.taint();
  return r.pick(NUMBERS);
}

function wrongType(r: Prng, v: unknown): unknown {
  const options: unknown[] = [null, true, false, 0, -1, 1.5, '', 'x', [], {}, [1, 'a'], { a: 1 }, 2 ** 53];
  if (typeof v === 'string') options.push(Number(v.length), [v], { v });
  if (typeof v === 'number') options.push(String(v), [v]);
  if (Array.isArray(v)) options.push(Object.fromEntries(v.map((x, i) => [String(i), x])));
  if (v && typeof v === 'object' && !Array.isArray(v)) options.push(Object.values(v), JSON.stringify(v));
  return r.pick(options.filter((o) => typeof o !== typeof v || Array.isArray(o) !== Array.isArray(v)));
}

function nest(r: Prng, depth: number, leaf: unknown): unknown {
  let v = leaf;
  const asArray = r.chance(0.5);
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { a: v };
  return v;
}

type Slot = { parent: Record<string, unknown> | unknown[] | undefined; key: string | number | undefined; value: unknown; path: string };
/** Every place in a JSON value (the root included), with how to reach and replace it. */
function slots(v: unknown, parent?: Slot['parent'], key?: string | number, path = '$', out: Slot[] = []): Slot[] {
  out.push({ parent, key, value: v, path });
  if (Array.isArray(v)) v.forEach((x, i) => void slots(x, v, i, `${path}[${i}]`, out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) slots(x, v as Record<string, unknown>, k, `${path}.${k}`, out);
  return out;
}

function clone<T>(v: T): T {
  return v === undefined ? v : JSON.parse(JSON.stringify(v));
}

/** A placeholder replaced in the serialized text: for values JSON.stringify cannot produce. */
const MARK = '"\u0001raw\u0001"';

/** One mutation of `valid`. */
export function mutate(r: Prng, valid: unknown): Mutated {
  r.taint();
  const root = clone(valid) ?? {};
  const all = slots(root);
  const slot = r.pick(all);
  const replace = (nv: unknown): unknown => {
    if (slot.parent === undefined) return nv;
    (slot.parent as Record<string | number, unknown>)[slot.key!] = nv;
    return root;
  };
  const kind = r.weighted<string>([
    [6, 'wrong-type'],
    [4, 'delete-key'],
    [4, 'extra-key'],
    [4, 'proto-key'],
    [6, 'number'],
    [2, 'raw-number'],
    [7, 'string'],
    [2, 'deep-nesting'],
    [2, 'bad-json'],
    [1, 'duplicate-key'],
    [1, 'whole-body'],
    [2, 'array-grow'],
  ]);
  switch (kind) {
    case 'wrong-type':
      return { value: replace(wrongType(r, slot.value)), what: `wrong type at ${slot.path}` };
    case 'delete-key': {
      const objs = all.filter((s) => s.value && typeof s.value === 'object' && !Array.isArray(s.value) && Object.keys(s.value).length > 0);
      if (!objs.length) return { value: {}, what: 'empty object' };
      const o = r.pick(objs);
      const k = r.pick(Object.keys(o.value as object));
      delete (o.value as Record<string, unknown>)[k];
      return { value: root, what: `missing ${o.path}.${k}` };
    }
    case 'extra-key':
    case 'proto-key': {
      const objs = all.filter((s) => s.value && typeof s.value === 'object' && !Array.isArray(s.value));
      const o = objs.length ? r.pick(objs) : { value: root, path: '$' };
      const k = kind === 'proto-key' ? r.pick(PROTO_KEYS) : r.pick(['extra', 'status', 'spec', 'metadata', 'kind', 'uid', weirdString(r).slice(0, 40)]);
      const v = r.pick<unknown>([1, 'x', { polluted: true }, null, [], { isAdmin: true }]);
      if (k === '__proto__') {
        // JSON.stringify skips an own __proto__ set by assignment; write it as text.
        const text = JSON.stringify(root);
        const at = text.indexOf('{');
        if (at < 0) return { raw: `{"__proto__":${JSON.stringify(v)}}`, what: 'raw __proto__ key' };
        const raw = `${text.slice(0, at + 1)}"__proto__":${JSON.stringify(v)}${text[at + 1] === '}' ? '' : ','}${text.slice(at + 1)}`;
        return { raw, what: '__proto__ key' };
      }
      (o.value as Record<string, unknown>)[k] = v;
      return { value: root, what: `key ${JSON.stringify(k)} at ${o.path}` };
    }
    case 'number': {
      const nums = all.filter((s) => typeof s.value === 'number');
      const target = nums.length ? r.pick(nums) : slot;
      const n = weirdNumber(r);
      if (target.parent === undefined) return { value: n, what: `number ${n}` };
      (target.parent as Record<string | number, unknown>)[target.key!] = n;
      return { value: root, what: `number ${n} at ${target.path}` };
    }
    case 'raw-number': {
      const n = r.pick(RAW_NUMBERS);
      const nv = replace(MARK);
      return { raw: JSON.stringify(nv).replace(MARK, n), what: `number literal ${n.slice(0, 20)} at ${slot.path}` };
    }
    case 'string': {
      const strs = all.filter((s) => typeof s.value === 'string');
      const target = strs.length && r.chance(0.8) ? r.pick(strs) : slot;
      const s = weirdString(r);
      const nv = r.chance(0.3) && typeof target.value === 'string' ? `${target.value}${s}` : s;
      if (target.parent === undefined) return { value: nv, what: 'string body' };
      (target.parent as Record<string | number, unknown>)[target.key!] = nv;
      return { value: root, what: `string ${JSON.stringify(nv.slice(0, 24))}${nv.length > 24 ? `(${nv.length} chars)` : ''} at ${target.path}` };
    }
    case 'deep-nesting': {
      const depth = r.pick([64, 256, 1000, 2500, 5000, 20_000]);
      if (depth > 3000) {
        // Text, not objects: stringify of very deep values overflows the client's own stack.
        const open = r.chance(0.5) ? '[' : '{"a":';
        const close = open === '[' ? ']' : '}';
        const nv = replace(MARK);
        return { raw: JSON.stringify(nv).replace(MARK, `${open.repeat(depth)}1${close.repeat(depth)}`), what: `nesting ${depth} at ${slot.path}` };
      }
      return { value: replace(nest(r, depth, slot.value ?? 1)), what: `nesting ${depth} at ${slot.path}` };
    }
    case 'bad-json': {
      const text = JSON.stringify(root);
      const bad = r.pick([
        () => text.slice(0, Math.max(1, r.int(0, text.length - 1))),
        () => `${text},`,
        () => text.replace(/"/g, "'"),
        () => `${text}}`,
        () => text.replace(/:/, ''),
        () => `\ufeff${text}`,
        () => `${text}\u0000`,
        () => 'undefined',
        () => '{"a":NaN}',
        () => "{a:'b'}",
        () => '[1,2,]',
        () => '\u0000',
        () => ' '.repeat(100),
      ])();
      return { raw: bad, what: 'malformed JSON' };
    }
    case 'duplicate-key': {
      const text = JSON.stringify(root);
      if (!text.startsWith('{') || text === '{}') return { raw: '{"a":1,"a":2}', what: 'duplicate key' };
      const first = text.slice(1, text.indexOf(':'));
      return { raw: `{${first}:"dup",${text.slice(1)}`, what: `duplicate key ${first}` };
    }
    case 'whole-body':
      return { value: r.pick<unknown>([null, 0, 'x', [], [root], true, { metadata: null }, { spec: [] }]), what: 'whole body replaced' };
    default: {
      const arrays = all.filter((s) => Array.isArray(s.value));
      if (!arrays.length) return { value: replace([slot.value, slot.value]), what: `array at ${slot.path}` };
      const a = r.pick(arrays);
      const items = a.value as unknown[];
      const n = r.pick([2, 100, 1001, 5000]);
      const proto = items[0] ?? 'x';
      for (let i = items.length; i < n; i++) items.push(clone(proto));
      return { value: root, what: `array of ${n} at ${a.path}` };
    }
  }
}
