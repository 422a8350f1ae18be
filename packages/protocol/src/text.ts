import { z } from 'zod';

/**
 * Shared building blocks for strings and numbers that come in from outside (API bodies, URLs, agent
 * messages). Both stores must answer the same 4xx: PostgreSQL refuses NUL in text and numbers beyond
 * its integer column range, where SQLite would silently accept them, so these limits live in the
 * schemas, not in either store.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: as above, but tab, newline and carriage return are free text
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
// A surrogate that is not half of a pair (JSON may carry one as "\ud800"): it has no UTF-8 encoding, so
// PostgreSQL refuses it where SQLite would store U+FFFD. In `u` mode a paired surrogate is one code
// point and does not match.
const LONE_SURROGATE = /\p{Cs}/u;

/** True when `s` holds a C0 control character or DEL (tab, newline and CR included), or a lone surrogate. */
export const hasControlChars = (s: string): boolean => CONTROL.test(s) || LONE_SURROGATE.test(s);
/** True when `s` holds a control character free text may not carry (anything but tab, newline, CR), or a lone surrogate. */
export const hasTextControlChars = (s: string): boolean => TEXT_CONTROL.test(s) || LONE_SURROGATE.test(s);

export const CONTROL_CHARS_MESSAGE = 'must not contain control characters or unpaired surrogates';
export const TEXT_CONTROL_CHARS_MESSAGE = 'must not contain control characters (other than tab, newline and carriage return) or unpaired surrogates';

/** A one-line string: no control characters at all (identifiers, versions, names from URLs). */
export const PlainString = z.string().refine((s) => !hasControlChars(s), CONTROL_CHARS_MESSAGE);
/** Free text (reasons, messages, descriptions): tab, newline and carriage return allowed, other control characters not. */
export const SafeText = z.string().refine((s) => !hasTextControlChars(s), TEXT_CONTROL_CHARS_MESSAGE);

/**
 * The first place in a JSON-like value where a string breaks the rule: object keys may hold no
 * control characters, string values none but tab, newline and CR (`plain: true`: none at all).
 * Returns its path, or undefined.
 */
export function findControlChars(value: unknown, opts: { plain?: boolean } = {}, path: (string | number)[] = []): (string | number)[] | undefined {
  const bad = opts.plain ? hasControlChars : hasTextControlChars;
  if (typeof value === 'string') return bad(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = findControlChars(value[i], opts, [...path, i]);
      if (p) return p;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (hasControlChars(k)) return [...path, k];
      const p = findControlChars(v, opts, [...path, k]);
      if (p) return p;
    }
  }
  return undefined;
}

/**
 * Adds the free-text rule to every string (and key) of a whole message, so a schema with many string
 * fields is covered at once, including fields added later. Object schemas refined this way can no
 * longer be `.extend()`ed; refine the final schema.
 */
export function noControlChars<T extends z.ZodType>(schema: T): T {
  return schema.superRefine(refuseControlChars);
}

/** The check behind noControlChars, for `.superRefine(refuseControlChars)` at the end of a schema. */
export function refuseControlChars(value: unknown, ctx: z.RefinementCtx): void {
  const path = findControlChars(value);
  if (path) ctx.addIssue({ code: 'custom', path, message: TEXT_CONTROL_CHARS_MESSAGE });
}

/**
 * How deep a JSON body or agent message may nest (objects and arrays; `{}` is one level). SQLite's
 * JSON functions refuse a document nested deeper than 1000 levels as "malformed JSON" (JSON_MAX_DEPTH
 * in sqlite's src/json.c), and the store's expression indexes run them on every spec and status
 * written, where PostgreSQL's jsonb goes much deeper: the limit lives here so both stores answer the
 * same 400. Edgeplane's own documents nest a dozen levels at most; a Kubernetes config or addon
 * value may add some, and 100 leaves room for that.
 */
export const MAX_JSON_DEPTH = 100;
export const JSON_DEPTH_MESSAGE = `must not nest objects and arrays more than ${MAX_JSON_DEPTH} levels deep`;

/**
 * The path of the first object or array nested deeper than MAX_JSON_DEPTH in a parsed JSON value, or
 * undefined. Recursion stops at the limit, so a value nested thousands deep costs no deep stack.
 */
export function findTooDeep(value: unknown, depth = 0, path: (string | number)[] = []): (string | number)[] | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  if (depth === MAX_JSON_DEPTH) return path;
  const at = (k: string | number, v: unknown) => (v !== null && typeof v === 'object' ? findTooDeep(v, depth + 1, [...path, k]) : undefined);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = at(i, value[i]);
      if (p) return p;
    }
    return undefined;
  }
  for (const k of Object.keys(value)) {
    const p = at(k, (value as Record<string, unknown>)[k]);
    if (p) return p;
  }
  return undefined;
}

/** Largest value of a 32-bit signed integer column (PostgreSQL `integer`). */
export const INT32_MAX = 2 ** 31 - 1;
/** 1..2^31-1: counts, revisions, limits that go to integer columns. */
export const PositiveInt32 = z.number().int().min(1).max(INT32_MAX);
/** 0..2^31-1, where 0 is meaningful. */
export const NonNegativeInt32 = z.number().int().min(0).max(INT32_MAX);

/** Longest timestamp the API accepts (timestamps are stored in varchar(40) columns). */
export const TIMESTAMP_MAX_LENGTH = 40;
