import type { KindMeta } from '@edgeplane/protocol/kind-table';
import { stringify } from 'yaml';
import type { Resource } from './api-client.js';

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

const NONE = '<none>';

/** Columns are separated by three spaces, like kubectl's tables. */
const GAP = '   ';
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences take no columns
const ANSI = /\u001b\[[0-9;]*m/g;
/** Code points a terminal draws two columns wide: East Asian wide and fullwidth forms, and emoji. */
const WIDE =
  /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;
/** Printable ASCII, one column a character: nearly every cell, measured without looking at each character. */
const ASCII = /^[\x20-\x7e]*$/;
/** Combining marks and zero-width characters take no column. */
const ZERO = /[\p{Mn}\p{Me}\u200b-\u200f]/u;

/** Terminal columns a line of text takes. */
function displayWidth(text: string): number {
  if (ASCII.test(text)) return text.length;
  let width = 0;
  for (const ch of text.replace(ANSI, '')) width += ZERO.test(ch) ? 0 : WIDE.test(ch) ? 2 : 1;
  return width;
}

/**
 * Renders rows under headers as a plain table (kubectl's layout: no borders, columns padded to
 * their widest cell and three spaces apart; a cell with newlines makes its row that many lines).
 * Lines have no trailing spaces and end with a newline. Hand-written: cli-table3, used before,
 * lays a table out in quadratic time (a second for `get hosts` of 1,000 hosts).
 */
export function renderTable(headers: string[], rows: string[][]): string {
  const table = [headers, ...rows].map((row) => headers.map((_, i) => String(row[i] ?? '').split('\n')));
  const widths = headers.map((_, i) => table.reduce((w, row) => row[i].reduce((m, line) => Math.max(m, displayWidth(line)), w), 0));
  const out: string[] = [];
  for (const row of table) {
    const height = Math.max(...row.map((cell) => cell.length));
    for (let l = 0; l < height; l++) {
      out.push(
        row
          .map((cell, i) => (cell[l] ?? '') + ' '.repeat(widths[i] - displayWidth(cell[l] ?? '')))
          .join(GAP)
          .trimEnd(),
      );
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * A duration as kubectl prints ages: `45s`, `5m`, `2h`, `3d`, `2y`. Rounds down; a negative
 * duration is treated as zero.
 */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** A duration exactly, in the units flags take: `90s`, `10m`, `1h30m`, `7d` (not rounded like an age). */
export function formatDurationExact(ms: number): string {
  let s = Math.max(0, Math.round(ms / 1000));
  if (s === 0) return '0s';
  let out = '';
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (s >= size) out += `${Math.floor(s / size)}${unit}`;
    s %= size;
  }
  return out;
}

/** Age of a timestamp relative to now (`5m`); a timestamp in the future reads `in 5m`. */
export function formatAge(timestamp: string, now: Date = new Date()): string {
  const t = Date.parse(timestamp);
  if (Number.isNaN(t)) return timestamp;
  const diff = now.getTime() - t;
  return diff >= 0 ? formatDuration(diff) : `in ${formatDuration(-diff)}`;
}

const COUNT_PATH = /(^|\.)counts\.[^.]+$/;

const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;

/** Reads a dotted path (`status.lastSeen`) from an object. */
export function getPath(obj: unknown, path: string): unknown {
  let value: unknown = obj;
  for (const key of path.split('.')) {
    if (value == null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** One table cell: timestamps become ages, missing values `<none>` (a missing count 0), structures compact JSON. */
export function formatCell(value: unknown, path: string, now: Date = new Date()): string {
  // A tally (status.counts.succeeded) leaves out what it has not counted: that is 0, not unknown.
  if (value === undefined || value === null || value === '') return COUNT_PATH.test(path) ? '0' : NONE;
  if (typeof value === 'string') {
    const last = path.split('.').pop() ?? '';
    if (ISO_TIMESTAMP.test(value) && /(At|Seen|Timestamp|Time)$/i.test(last)) return formatAge(value, now);
    return value.replace(/\s*\n\s*/g, ' ');
  }
  if (typeof value === 'number' && path.endsWith('Bytes')) return `${Math.round(value / 2 ** 30)}Gi`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.length === 0 ? NONE : value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(',');
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    return entries.length === 0 ? NONE : entries.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(',');
  }
  return String(value);
}

/** The kind's table (KINDS[].columns) for a set of resources. */
export function renderResourceTable(kind: KindMeta, items: Resource[], now: Date = new Date(), wide = false): string {
  const columns = wide ? [...kind.columns, ...(kind.wideColumns ?? [])] : kind.columns;
  const rows = items.map((item) => columns.map((c) => formatCell(getPath(item, c.path), c.path, now)));
  return renderTable(
    columns.map((c) => c.header),
    rows,
  );
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}

/** A list in the API's own shape, so `get -o yaml` output can be fed back to `apply -f`. */
export function asList(kind: KindMeta, items: Resource[], continueToken?: string): Record<string, unknown> {
  return {
    apiVersion: 'edgeplane.io/v1',
    kind: `${kind.kind}List`,
    items,
    metadata: continueToken ? { continue: continueToken } : {},
  };
}

/** Renders `get` output: several resources (a list) or one. */
export function renderResources(
  format: OutputFormat,
  kind: KindMeta,
  items: Resource[],
  options: { single?: boolean; continueToken?: string; now?: Date } = {},
): string {
  switch (format) {
    case 'json':
      return toJson(options.single ? items[0] : asList(kind, items, options.continueToken));
    case 'yaml':
      return toYaml(options.single ? items[0] : asList(kind, items, options.continueToken));
    case 'name':
      return items.map((i) => `${kind.plural}/${i.metadata.name}\n`).join('');
    case 'wide':
      return renderResourceTable(kind, items, options.now, true);
    default:
      return renderResourceTable(kind, items, options.now);
  }
}
