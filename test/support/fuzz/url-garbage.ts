import { PROTO_KEYS, pct, weirdNumber, weirdString } from './mutate.js';
import type { Prng } from './prng.js';

/** Garbage for URLs: path segments and query strings. Each use marks the request malformed. */

/** `value`, marking the request malformed. */
export function tainted<T>(r: Prng, value: T): T {
  r.taint();
  return value;
}

/** Path segments that are not names: traversal, encodings, control characters, prototype names, lengths. */
export function garbageSegment(r: Prng): string {
  r.taint();
  return r.weighted<() => string>([
    [3, () => '%00'],
    [2, () => `a%00b`],
    [2, () => '%ff'],
    [1, () => '%zz'],
    [1, () => '%'],
    [2, () => '..%2f..%2fetc%2fpasswd'],
    [1, () => '%2e%2e'],
    [1, () => '..'],
    [1, () => '.'],
    [1, () => '%c0%ae%c0%ae'],
    [1, () => '%e2%80%ae'],
    [1, () => '%F0%9F%98%80'],
    [1, () => '%ed%a0%80'],
    [1, () => `%${r.hex(2)}`.repeat(r.int(1, 50))],
    [2, () => r.pick(PROTO_KEYS)],
    [1, () => 'ADMIN'],
    [1, () => 'a'.repeat(r.pick([63, 64, 254, 2000, 9000]))],
    [1, () => '%20'],
    [1, () => '%0d%0aX-Injected:%201'],
    [1, () => pct(weirdString(r).slice(0, 200))],
    [1, () => `${r.int(-5, 5)}`],
    [1, () => String(2 ** 53 + 2)],
    [1, () => '99999999999999999999999'],
    [1, () => '1.5'],
    [1, () => '-1'],
    [1, () => ''],
    [1, () => ';'],
    [1, () => '*'],
  ])();
}

function queryValue(r: Prng, key: string): string {
  const k = key.toLowerCase();
  const picks: (() => string)[] = [() => pct(weirdString(r).slice(0, 300)), () => garbageSegment(r)];
  if (k === 'limit' || k === 'waitseconds' || k === 'revision')
    picks.push(
      () => String(weirdNumber(r)),
      () => r.pick(['0', '-1', '1', '1000', '1001', '1.5', 'abc', '', '1e3', '0x10', 'Infinity', 'NaN', '9'.repeat(40)]),
    );
  if (k === 'labelselector')
    picks.push(() =>
      pct(
        r.pick([
          'a=b',
          'a!=b',
          'a',
          '!a',
          'a in (x,y)',
          'a notin (x)',
          'a in (',
          'a in ()',
          '==',
          'a=b,c!=d,!e',
          '__proto__=x',
          'constructor',
          "a=' OR 1=1",
          `${'k'.repeat(300)}=v`,
          'a=b'.repeat(2000),
          '(((',
          'a=\u0000',
          'a in (x,y,z),b',
          'x/y=z',
          'a==b',
          ',',
        ]),
      ),
    );
  if (k === 'continue')
    picks.push(() =>
      pct(
        r.pick([
          Buffer.from(JSON.stringify({ name: 'a', after: 'x' })).toString('base64url'),
          // Well-formed tokens (the server's own shape) around hostile values.
          Buffer.from(
            JSON.stringify({ after: r.pick<unknown>([weirdString(r).slice(0, 300), 1, null, {}, ['a'], 'fz-site', 'a\u0000', 'z'.repeat(254)]) }),
          ).toString('base64url'),
          Buffer.from('{"__proto__":{"x":1}}').toString('base64'),
          Buffer.from(JSON.stringify({ seq: 2 ** 53 + 2 })).toString('base64url'),
          Buffer.from('not json').toString('base64url'),
          'eyJ',
          '!!!',
          '0',
          '-1',
          '99999999999999999999',
          'a'.repeat(5000),
          '%00',
        ]),
      ),
    );
  if (k === 'fieldselector')
    picks.push(() =>
      pct(r.pick(['status.state=ready', 'status.state', 'involvedObject.name=x', 'involvedObject.kind=EdgeHost,x=y', 'constructor=1', 'a=b=c', '='])),
    );
  if (k === 'format') picks.push(() => r.pick(['iso', 'json', 'user-data', 'yaml', '', 'ISO', '__proto__']));
  return r.pick(picks)();
}

export function queryString(r: Prng, keys: string[]): string {
  if (!r.chance(0.45)) return '';
  r.taint();
  const all = [...keys, 'limit', 'continue', 'labelSelector', 'fieldSelector', '__proto__', 'constructor', 'x', 'watch', 'ticket'];
  const n = r.int(1, 4);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = r.chance(0.85) ? r.pick(all) : pct(weirdString(r).slice(0, 40));
    parts.push(r.chance(0.1) ? k : `${k}=${queryValue(r, k)}`);
  }
  // Repeated keys become arrays in the parsed query: handlers that expect a string must cope.
  if (r.chance(0.15) && parts.length) parts.push(parts[0]!);
  return `?${parts.join('&')}`;
}
