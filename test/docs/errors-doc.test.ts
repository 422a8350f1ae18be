import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';

const docPath = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));
const doc = readFileSync(docPath, 'utf8');

/** Rows of the error table: `| \`Code\` | status | meaning | what to do |`. */
function documentedCodes(markdown: string): Map<string, number> {
  const rows = new Map<string, number>();
  for (const line of markdown.split('\n')) {
    const m = line.match(/^\|\s*`([A-Za-z]+)`\s*\|\s*(\d{3})\s*\|/);
    if (!m) continue;
    if (rows.has(m[1])) throw new Error(`docs/errors.md lists ${m[1]} twice`);
    rows.set(m[1], Number(m[2]));
  }
  return rows;
}

describe('docs/errors.md', () => {
  const rows = documentedCodes(doc);

  it('has a table row', () => {
    expect(rows.size).toBeGreaterThan(0);
  });

  it.each(Object.entries(ERROR_CODES))('documents %s with its HTTP status', (code, { status }) => {
    expect(rows.has(code), `${code} is missing from docs/errors.md`).toBe(true);
    expect(rows.get(code), `${code} has the wrong status in docs/errors.md`).toBe(status);
  });

  it('lists only codes that exist in the registry', () => {
    const unknown = [...rows.keys()].filter((code) => !Object.hasOwn(ERROR_CODES, code));
    expect(unknown, 'codes in docs/errors.md that ERROR_CODES does not have').toEqual([]);
  });
});
