import { readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';

/** How many entries of each kind the build cache keeps (the most recently used ones). */
export const CACHE_KEEP = { debian: 3, layers: 16 } as const;

/** Marks a cache entry as used now (its mtime), so pruning keeps it among the most recent. */
export async function touchEntry(file: string): Promise<void> {
  const now = new Date();
  await utimes(file, now, now).catch(() => undefined);
}

/**
 * Deletes all but the `keep` most recently used entries of a cache directory whose names end with one
 * of `suffixes` (a Debian base is ~820 MB, an OS 2 layer ~230 MB: every agent change makes a new
 * layer, so an unbounded cache fills a CI machine's disk). In-progress files (`.tmp`, `.lock`,
 * `.build-*`) never match a suffix and are left alone.
 */
export async function pruneCache(dir: string, keep: number, suffixes: string[]): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const entries: { file: string; used: number }[] = [];
  for (const name of names) {
    if (name.startsWith('.') || !suffixes.some((s) => name.endsWith(s))) continue;
    const file = join(dir, name);
    const st = await stat(file).catch(() => undefined);
    if (st?.isFile()) entries.push({ file, used: st.mtimeMs });
  }
  entries.sort((a, b) => b.used - a.used);
  const removed = entries.slice(keep).map((e) => e.file);
  for (const file of removed) await rm(file, { force: true });
  return removed;
}
