import { appendFileSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciError } from '../types.js';
import { assembleSlotImage, type FetchPackRange } from './assemble.js';
import { buildChunkIndex, type ChunkIndex, CODEC, decodeIndex, encodeIndex, INDEX_MAGIC } from './chunk-index.js';
import { CHUNK_MAX, CHUNK_MIN, chunkFile } from './chunker.js';

let dir: string;
let fromImg: string;
let toImg: string;
let pack: string;
let index: ChunkIndex;

/** A seeded PRNG (xorshift32): the test data, and so the chunk boundaries, are the same on every run. */
let seed = 0x2545f491;
function random(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}

/** Semi-compressible data: pseudo-random words, so chunks compress a little and differ from each other. */
function data(bytes: number): Buffer {
  const words = Array.from({ length: 512 }, () =>
    Math.floor(random() * 2 ** 48)
      .toString(16)
      .padStart(12, '0'),
  );
  const out: string[] = [];
  let n = 0;
  while (n < bytes) {
    const w = words[Math.floor(random() * words.length)];
    out.push(w);
    n += w.length + 1;
  }
  return Buffer.from(out.join(' ')).subarray(0, bytes);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ep-delta-'));
  const a = data(6 * 1024 * 1024);
  // The update: 5000 bytes inserted a third in, 1 KiB changed near the end, 1 MiB of zeroes appended.
  const b = Buffer.concat([
    a.subarray(0, 2_000_000),
    data(5000),
    a.subarray(2_000_000, 5_500_000),
    data(1024),
    a.subarray(5_501_024),
    Buffer.alloc(1024 * 1024),
  ]);
  fromImg = join(dir, 'from.img');
  toImg = join(dir, 'to.img');
  pack = join(dir, 'pack');
  await writeFile(fromImg, a);
  await writeFile(toImg, b);
  await writeFile(pack, '');
  index = await buildChunkIndex(toImg, (bytes) => appendFileSync(pack, bytes), { codec: CODEC.gzip });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const packRange =
  (hook?: (offset: number, bytes: Buffer) => Buffer): FetchPackRange =>
  async (packNo, offset, length) => {
    expect(packNo).toBe(0);
    const fh = await open(pack, 'r');
    try {
      const buf = Buffer.alloc(length);
      await fh.read(buf, 0, length, offset);
      return hook ? hook(offset, buf) : buf;
    } finally {
      await fh.close();
    }
  };

describe('chunker', () => {
  it('cuts within the size bounds and finds the same chunks after an insertion', async () => {
    const a: string[] = [];
    const b: string[] = [];
    await chunkFile(fromImg, (c) => {
      a.push(c.hash.toString('hex'));
      expect(c.length).toBeLessThanOrEqual(CHUNK_MAX);
    });
    await chunkFile(toImg, (c) => void b.push(c.hash.toString('hex')));
    const shared = b.filter((h) => a.includes(h)).length;
    // ~6 MiB / 64 KiB = ~96 chunks; the two edits and the appended zeroes touch only a handful.
    expect(a.length).toBeGreaterThan((6 * 1024 * 1024) / CHUNK_MAX);
    // Fixed-size blocks would lose every block after the insertion (~two thirds of them).
    expect(shared).toBeGreaterThanOrEqual(a.length - 8);
  });
});

describe('chunk index format', () => {
  it('round-trips and tiles the image', () => {
    const decoded = decodeIndex(encodeIndex(index));
    expect(decoded.size).toBe(index.size);
    expect(decoded.digest).toBe(index.digest);
    expect(decoded.entries.map((e) => e.hash.toString('hex'))).toEqual(index.entries.map((e) => e.hash.toString('hex')));
    expect(decoded.entries.every((e) => e.length >= CHUNK_MIN || e === decoded.entries.at(-1))).toBe(true);
    // The appended zeroes are one chunk repeated, stored once in the pack.
    const offsets = new Set(decoded.entries.map((e) => e.packOffset));
    expect(offsets.size).toBeLessThan(decoded.entries.length);
  });

  it('refuses an index whose chunks do not add up to the image, or another format', () => {
    const raw = Buffer.from(gunzipSync(encodeIndex(index)));
    raw.writeBigUInt64BE(BigInt(index.size + 1), 8);
    expect(() => decodeIndex(gzipSync(raw))).toThrow(/add up/);
    const other = Buffer.from(raw);
    other.write('XXXXXXXX', 0, 'latin1');
    expect(() => decodeIndex(gzipSync(other))).toThrow(/magic/);
    expect(INDEX_MAGIC.toString()).toBe('EPCHIDX2');
  });
});

describe('assembleSlotImage', () => {
  it('seeds from the active slot and fetches only the chunks it lacks', async () => {
    const target = join(dir, 'slot-b.img');
    const p = await assembleSlotImage({ index, fetchRange: packRange(), seeds: [fromImg, join(dir, 'no-recovery')], target, chunkStore: join(dir, 'store1') });
    expect((await readFile(target)).equals(await readFile(toImg))).toBe(true);
    const packSize = (await readFile(pack)).length;
    expect(p.fetched).toBeGreaterThan(0);
    expect(p.fetched).toBeLessThan(packSize / 4);
    expect(p.reused).toBeGreaterThan(index.size * 0.7);
  });

  it('without a seed, fetches everything and still produces the image', async () => {
    const target = join(dir, 'slot-full.img');
    const p = await assembleSlotImage({ index, fetchRange: packRange(), seeds: [], target, chunkStore: join(dir, 'store2') });
    expect((await readFile(target)).equals(await readFile(toImg))).toBe(true);
    expect(p.fetched).toBe((await readFile(pack)).length);
  });

  it('detects a chunk corrupted in transit and fetches it again', async () => {
    let corrupted = 0;
    const target = join(dir, 'slot-c.img');
    const p = await assembleSlotImage({
      index,
      seeds: [fromImg],
      target,
      chunkStore: join(dir, 'store3'),
      fetchRange: packRange((_offset, bytes) => {
        if (corrupted++ === 0) bytes[Math.floor(bytes.length / 2)] ^= 0xff;
        return bytes;
      }),
    });
    expect(corrupted).toBeGreaterThan(1);
    expect((await readFile(target)).equals(await readFile(toImg))).toBe(true);
    expect(p.written).toBe(index.size);
  });

  it('fails with DigestMismatch when the registry keeps serving a bad chunk', async () => {
    const run = assembleSlotImage({
      index,
      seeds: [fromImg],
      target: join(dir, 'slot-d.img'),
      chunkStore: join(dir, 'store4'),
      fetchRange: packRange((_o, bytes) => Buffer.from(bytes).fill(7)),
    });
    await expect(run).rejects.toBeInstanceOf(OciError);
    await expect(run).rejects.toMatchObject({ code: 'DigestMismatch' });
  });

  it('resumes after an interruption: chunks fetched before it are not fetched again', async () => {
    const store = join(dir, 'store5');
    const ctl = new AbortController();
    let calls = 0;
    const target = join(dir, 'slot-e.img');
    const first = assembleSlotImage({
      index,
      seeds: [],
      target,
      chunkStore: store,
      maxRangeBytes: 64 * 1024,
      signal: ctl.signal,
      fetchRange: packRange((_o, bytes) => {
        if (++calls === 5) ctl.abort(new Error('link down'));
        return bytes;
      }),
      onProgress: () => ctl.signal.throwIfAborted(),
    });
    await expect(first).rejects.toThrow(/link down/);
    const kept = (await readdir(store)).filter((f) => !f.endsWith('.partial')).length;
    expect(kept).toBeGreaterThanOrEqual(4);
    let again = 0;
    const p = await assembleSlotImage({
      index,
      seeds: [],
      target,
      chunkStore: store,
      fetchRange: packRange((_o, b) => {
        again++;
        return b;
      }),
    });
    expect((await readFile(target)).equals(await readFile(toImg))).toBe(true);
    const distinct = new Set(index.entries.map((e) => e.packOffset)).size;
    expect(p.fetched).toBeLessThan((await readFile(pack)).length);
    expect(again).toBeLessThan(distinct);
    expect(p.reused).toBe(0);
  });

  it('refuses a rebuilt image whose digest differs from the index', async () => {
    const wrong = { ...index, digest: `sha256:${'0'.repeat(64)}` };
    await expect(
      assembleSlotImage({ index: wrong, fetchRange: packRange(), seeds: [fromImg], target: join(dir, 'slot-f.img'), chunkStore: join(dir, 'store6') }),
    ).rejects.toMatchObject({ code: 'DigestMismatch' });
  });
});
