import { mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pruneCache, touchEntry } from './cache.js';

describe('build cache bound', () => {
  it('keeps the most recently used entries, a touched old one among them, and never in-progress files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ep-cache-'));
    const at = (name: string, secondsAgo: number) => {
      writeFileSync(join(dir, name), name);
      const t = new Date(Date.now() - secondsAgo * 1000);
      utimesSync(join(dir, name), t, t);
    };
    at('a.tar.zst', 500);
    at('b.tar.zst', 400);
    at('c.tar.gz', 300);
    at('d.tar.zst', 200);
    at('d.tar.zst.123.tmp', 1000);
    at('.build-x', 1000);
    at('notes.txt', 1000);
    // A cache hit on the oldest entry makes it the most recent.
    await touchEntry(join(dir, 'a.tar.zst'));
    const removed = await pruneCache(dir, 2, ['.tar.zst', '.tar.gz']);
    expect(removed.map((f) => f.slice(dir.length + 1)).sort()).toEqual(['b.tar.zst', 'c.tar.gz']);
    expect(readdirSync(dir).sort()).toEqual(['.build-x', 'a.tar.zst', 'd.tar.zst', 'd.tar.zst.123.tmp', 'notes.txt']);
    // Within the bound nothing goes; a missing directory is an empty cache.
    expect(await pruneCache(dir, 2, ['.tar.zst', '.tar.gz'])).toEqual([]);
    expect(await pruneCache(join(dir, 'none'), 2, ['.tar'])).toEqual([]);
  });
});
