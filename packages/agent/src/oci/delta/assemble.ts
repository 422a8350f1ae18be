import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OciError } from '../types.js';
import type { ChunkIndex, IndexEntry } from './chunk-index.js';
import { unpackChunk } from './chunk-index.js';
import { chunkFile } from './chunker.js';
import { SlotImageWriter } from './slot-image.js';

/** Reads `length` bytes of pack number `pack` from `offset` (an HTTP range request against the registry). */
export type FetchPackRange = (pack: number, offset: number, length: number, signal?: AbortSignal) => Promise<Buffer>;

export interface AssembleOptions {
  index: ChunkIndex;
  fetchRange: FetchPackRange;
  /** What the device already has: its active slot, its recovery slot (block devices or image files). */
  seeds: string[];
  /** The image file or block device the slot image is written to. */
  target: string;
  /**
   * Fetched chunks, kept across interruptions (one file per chunk, named by its sha256), and where
   * the seeds hold the others (seeds.json); resumed from.
   */
  chunkStore: string;
  signal?: AbortSignal;
  onProgress?: (p: DeltaProgress) => void;
  /** Largest range request; adjacent missing chunks are fetched together up to this size. */
  maxRangeBytes?: number;
  /** A fetched chunk failed its check (decompression, length, sha256) and is fetched once more alone. */
  onRefetch?: (chunk: string, reason: string) => void;
}

export interface DeltaProgress {
  /** Bytes downloaded from the registry (compressed chunk bytes). */
  fetched: number;
  /** Bytes the plan fetches from the registry (known once the seeds are chunked; retries add to fetched). */
  toFetch: number;
  /** Image bytes taken from the seeds (the active and recovery slots) instead of the registry. */
  reused: number;
  /** Image bytes written so far, and the image size. */
  written: number;
  total: number;
}

interface SeedChunk {
  path: string;
  offset: number;
}

/**
 * Rebuilds a slot image from its chunk index: every chunk comes from a seed (verified again when
 * read, the seed may have changed since it was chunked), from the local chunk store (an earlier,
 * interrupted run), or from the pack in the registry (decompressed and checked against its sha256;
 * a chunk that fails is fetched once more, then the update fails). The whole image's sha256 must
 * match the index before this returns; the caller falls back to the full image otherwise.
 */
export async function assembleSlotImage(options: AssembleOptions): Promise<DeltaProgress> {
  const { index, signal } = options;
  const wanted = new Set(index.entries.map((e) => e.hash.toString('hex')));
  await mkdir(options.chunkStore, { recursive: true });
  const seeds = (await loadSeedMap(options.chunkStore, options.seeds)) ?? (await scanSeeds(options.seeds, wanted, signal));
  await writeFile(join(options.chunkStore, SEED_MAP), JSON.stringify({ seeds: options.seeds, chunks: [...seeds] }));
  const progress: DeltaProgress = { fetched: 0, toFetch: 0, reused: 0, written: 0, total: index.size };

  // Fetch first (resumable: each verified chunk is kept), then write the image in one pass.
  const missing: IndexEntry[] = [];
  const planned = new Set<string>();
  for (const e of index.entries) {
    const key = e.hash.toString('hex');
    if (seeds.has(key) || planned.has(key)) continue;
    planned.add(key);
    if (await stat(join(options.chunkStore, key)).catch(() => undefined)) continue;
    missing.push(e);
  }
  progress.toFetch = missing.reduce((sum, e) => sum + e.packLength, 0);
  options.onProgress?.({ ...progress });
  await fetchChunks(missing, options, progress);

  const out = await SlotImageWriter.open(options.target);
  try {
    for (const e of index.entries) {
      signal?.throwIfAborted();
      const data = await chunkBytes(e, seeds, options, progress);
      await out.write(data);
      progress.written = out.written;
      options.onProgress?.({ ...progress });
    }
    await out.finish(index.size, index.digest);
  } finally {
    await out.close();
  }
  await rm(options.chunkStore, { recursive: true, force: true });
  return progress;
}

/**
 * Where the seeds hold the chunks the index wants, kept in the chunk store so a resumed update does
 * not read and hash the seeds again (a whole partition each). Safe when stale: every seed chunk is
 * checked against its sha256 when read and fetched instead when it no longer matches.
 */
const SEED_MAP = 'seeds.json';

async function scanSeeds(paths: string[], wanted: Set<string>, signal?: AbortSignal): Promise<Map<string, SeedChunk>> {
  const seeds = new Map<string, SeedChunk>();
  for (const path of paths) {
    if (!(await stat(path).catch(() => undefined))) continue;
    await chunkFile(
      path,
      (c) => {
        const key = c.hash.toString('hex');
        if (wanted.has(key) && !seeds.has(key)) seeds.set(key, { path, offset: c.offset });
      },
      { signal, digest: false },
    ).catch((err: Error) => {
      signal?.throwIfAborted();
      void err; // an unreadable seed only means more to download
    });
  }
  return seeds;
}

/** The seed map an interrupted run of the same update kept, if it was made from the same seeds. */
async function loadSeedMap(chunkStore: string, paths: string[]): Promise<Map<string, SeedChunk> | undefined> {
  try {
    const kept = JSON.parse(await readFile(join(chunkStore, SEED_MAP), 'utf8')) as { seeds: string[]; chunks: [string, SeedChunk][] };
    if (JSON.stringify(kept.seeds) !== JSON.stringify(paths)) return undefined;
    return new Map(kept.chunks);
  } catch {
    return undefined;
  }
}

async function chunkBytes(e: IndexEntry, seeds: Map<string, SeedChunk>, options: AssembleOptions, progress: DeltaProgress): Promise<Buffer> {
  const key = e.hash.toString('hex');
  const seed = seeds.get(key);
  if (seed) {
    const data = await readAt(seed.path, seed.offset, e.length).catch(() => undefined);
    if (data && matches(data, e)) {
      progress.reused += e.length;
      return data;
    }
    seeds.delete(key); // the seed changed under us: fetch it instead
  }
  const stored = await readFile(join(options.chunkStore, key)).catch(() => undefined);
  if (stored && matches(stored, e)) {
    return stored;
  }
  // Missing or corrupted at rest: fetch it (again).
  await rm(join(options.chunkStore, key), { force: true });
  await fetchChunks([e], options, progress);
  const data = await readFile(join(options.chunkStore, key));
  if (!matches(data, e)) throw new OciError('DigestMismatch', `chunk ${key} does not match its sha256 after fetching it again`);
  return data;
}

/** Fetches chunks from the pack, coalescing neighbours into one range request; each is verified and stored. */
async function fetchChunks(entries: IndexEntry[], options: AssembleOptions, progress: DeltaProgress): Promise<void> {
  const max = options.maxRangeBytes ?? 8 * 1024 * 1024;
  const sorted = [...entries].sort((a, b) => a.pack - b.pack || a.packOffset - b.packOffset);
  for (let i = 0; i < sorted.length; ) {
    let j = i + 1;
    let end = sorted[i].packOffset + sorted[i].packLength;
    while (j < sorted.length && sorted[j].pack === sorted[i].pack && sorted[j].packOffset === end && end - sorted[i].packOffset + sorted[j].packLength <= max) {
      end += sorted[j].packLength;
      j++;
    }
    const group = sorted.slice(i, j);
    const start = group[0].packOffset;
    const bytes = await options.fetchRange(group[0].pack, start, end - start, options.signal);
    progress.fetched += bytes.length;
    for (const e of group) {
      const packed = bytes.subarray(e.packOffset - start, e.packOffset - start + e.packLength);
      let data: Buffer;
      try {
        if (packed.length !== e.packLength) throw new OciError('DigestMismatch', `short read: ${packed.length} of ${e.packLength} bytes`);
        data = unpackChunk(packed, e);
      } catch (err) {
        // Corrupted in transit or in the registry: one more try of this chunk alone (the rest of
        // the group is still read from the range already fetched).
        options.onRefetch?.(e.hash.toString('hex'), (err as Error).message);
        const again = await options.fetchRange(e.pack, e.packOffset, e.packLength, options.signal);
        progress.fetched += again.length;
        data = unpackChunk(again, e);
      }
      await storeChunk(options.chunkStore, e.hash.toString('hex'), data);
    }
    options.onProgress?.({ ...progress });
    i = j;
  }
}

async function storeChunk(dir: string, key: string, data: Buffer): Promise<void> {
  const tmp = join(dir, `${key}.partial`);
  await writeFile(tmp, data);
  await rename(tmp, join(dir, key));
}

function matches(data: Buffer, e: IndexEntry): boolean {
  return data.length === e.length && createHash('sha256').update(data).digest().equals(e.hash);
}

async function readAt(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return bytesRead === length ? buf : buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
