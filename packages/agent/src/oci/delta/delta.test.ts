import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinuxSlots } from '../../device/linux/linux-slots.js';
import { OciError } from '../types.js';
import { deltaManifest, parseDeltaManifest, patchesOf } from './artifact.js';
import { assembleSlotImage, type FetchPackRange } from './assemble.js';
import { buildChunkIndex, type ChunkIndex, CODEC, decodeIndex, encodeIndex, INDEX_MAGIC, INDEX_MEDIA_TYPE, PACK_MEDIA_TYPE } from './chunk-index.js';
import { CHUNK_MAX, CHUNK_MIN, chunkFile } from './chunker.js';
import { applyPatch, fetchPatch, makePatch } from './patch.js';
import { buildSlotImage } from './slot-image.js';
import { decodeVcdiff } from './vcdiff.js';

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

  it('a resumed update takes the seed map it kept instead of reading the seeds again; a seed chunk changed since is fetched', async () => {
    const store = join(dir, 'store7');
    const seed = join(dir, 'seed7.img');
    const original = await readFile(fromImg);
    await writeFile(seed, original);
    const target = join(dir, 'slot-g.img');
    const first = assembleSlotImage({
      index,
      seeds: [seed],
      target,
      chunkStore: store,
      fetchRange: async () => {
        throw new OciError('Unavailable', 'link down', true);
      },
    });
    await expect(first).rejects.toThrow(/link down/);
    expect(await readdir(store)).toContain('seeds.json');
    // The seed shifted by one byte: read again it would seed as much as before; the kept map's
    // offsets no longer match, so those chunks are checked, found changed, and fetched.
    await writeFile(seed, Buffer.concat([Buffer.from('x'), original]));
    const p = await assembleSlotImage({ index, seeds: [seed], target, chunkStore: store, fetchRange: packRange() });
    expect((await readFile(target)).equals(await readFile(toImg))).toBe(true);
    expect(p.reused).toBeLessThan(index.size * 0.2);
    // A fresh store reads the seed: most of the image is reused.
    const fresh = await assembleSlotImage({ index, seeds: [seed], target, chunkStore: join(dir, 'store8'), fetchRange: packRange() });
    expect(fresh.reused).toBeGreaterThan(index.size * 0.7);
  });

  it('refuses a rebuilt image whose digest differs from the index', async () => {
    const wrong = { ...index, digest: `sha256:${'0'.repeat(64)}` };
    await expect(
      assembleSlotImage({ index: wrong, fetchRange: packRange(), seeds: [fromImg], target: join(dir, 'slot-f.img'), chunkStore: join(dir, 'store6') }),
    ).rejects.toMatchObject({ code: 'DigestMismatch' });
  });
});

describe('binary patches (xdelta3 VCDIFF, decoded by vcdiff.ts)', () => {
  const sha = async (path: string) =>
    `sha256:${createHash('sha256')
      .update(await readFile(path))
      .digest('hex')}`;

  it('decodes what Debian xdelta3 makes, source copies near and far, target self-copies and runs included', async () => {
    // Make an image whose update moves blocks far back and forward and repeats its own bytes.
    const a = await readFile(fromImg);
    const b = Buffer.concat([a.subarray(3_000_000, 4_000_000), a.subarray(0, 2_000_000), Buffer.from('ab'.repeat(40_000)), data(3000), a.subarray(5_000_000)]);
    const to = join(dir, 'patch-to.img');
    await writeFile(to, b);
    const blob = join(dir, 'patch.br');
    const size = await makePatch(fromImg, to, blob);
    expect(size).toBeLessThan(b.length / 50);
    const target = join(dir, 'patch-out.img');
    await applyPatch({
      patchBlob: blob,
      source: fromImg,
      sourceSize: a.length,
      target,
      targetSize: b.length,
      targetDigest: await sha(to),
      workDir: join(dir, 'pw'),
    });
    expect((await readFile(target)).equals(b)).toBe(true);
  });

  it('a wrong source (one byte off) or a wrong digest fails DigestMismatch and leaves the image head unwritten', async () => {
    const blob = join(dir, 'patch2.br');
    await makePatch(fromImg, toImg, blob);
    const changed = join(dir, 'from-changed.img');
    const a = Buffer.from(await readFile(fromImg));
    a[100_000] ^= 1;
    await writeFile(changed, a);
    const target = join(dir, 'patch-bad.img');
    const b = await readFile(toImg);
    const opts = { patchBlob: blob, sourceSize: a.length, target, targetSize: b.length, targetDigest: await sha(toImg), workDir: join(dir, 'pw2') };
    await expect(applyPatch({ ...opts, source: changed })).rejects.toMatchObject({ code: 'DigestMismatch' });
    // The superblock area stays as it was (zeroes): a block-device slot reads as empty.
    expect((await readFile(target)).subarray(0, 64 * 1024).equals(Buffer.alloc(64 * 1024))).toBe(true);
    await expect(applyPatch({ ...opts, source: fromImg, targetDigest: `sha256:${'0'.repeat(64)}` })).rejects.toMatchObject({ code: 'DigestMismatch' });
    await applyPatch({ ...opts, source: fromImg });
    expect((await readFile(target)).equals(b)).toBe(true);
  });

  it('refuses what is not a plain VCDIFF: garbage, secondary compression, a copy past the source', async () => {
    const out = async () => undefined;
    const garbage = join(dir, 'garbage.vcdiff');
    await writeFile(garbage, 'not a patch');
    await expect(decodeVcdiff({ patch: garbage, source: fromImg, sourceSize: 1000, write: out })).rejects.toThrow(/not a VCDIFF/);
    const secondary = join(dir, 'secondary.vcdiff');
    await writeFile(secondary, Buffer.from([0xd6, 0xc3, 0xc4, 0x00, 0x01, 0x02]));
    await expect(decodeVcdiff({ patch: secondary, source: fromImg, sourceSize: 1000, write: out })).rejects.toThrow(/secondary compression/);
    // A window whose source segment lies past the source the caller vouches for.
    const past = join(dir, 'past.vcdiff');
    await writeFile(past, Buffer.from([0xd6, 0xc3, 0xc4, 0x00, 0x00, 0x01, 0x10, 0x00, 0x07, 0x10, 0x00, 0x00, 0x02, 0x00, 0x13, 0x00]));
    await expect(decodeVcdiff({ patch: past, source: fromImg, sourceSize: 8, write: out })).rejects.toThrow(/past the source/);
  });

  it('a patch download resumes where it stopped and is checked against its digest', async () => {
    const blob = await readFile(join(dir, 'patch2.br'));
    const patch = { digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`, size: blob.length, fromImage: '', fromSlot: '', fromSize: 0 };
    const pdir = join(dir, 'pdl');
    await mkdir(pdir, { recursive: true });
    const hex = patch.digest.replace('sha256:', '');
    await writeFile(join(pdir, `${hex}.partial`), blob.subarray(0, 100)); // what an interrupted run got
    const asked: number[] = [];
    const fetchRange = async (offset: number, length: number) => {
      asked.push(offset);
      return blob.subarray(offset, offset + length);
    };
    const got = await fetchPatch({ patch, dir: pdir, fetchRange });
    expect(asked).toEqual([100]);
    expect(got.fetched).toBe(blob.length - 100);
    expect((await readFile(got.path)).equals(blob)).toBe(true);
    // A corrupted download is deleted, not kept.
    await rm(got.path);
    const bad = async (offset: number, length: number) => Buffer.from(blob.subarray(offset, offset + length)).fill(0, 0, 1);
    await expect(fetchPatch({ patch, dir: pdir, fetchRange: bad })).rejects.toMatchObject({ code: 'DigestMismatch' });
    expect(await readdir(pdir)).toEqual([]);
  });

  it('a delta manifest lists its patches after the packs, each saying the slot image it applies to', () => {
    const d = (n: number) => `sha256:${String(n).repeat(64)}`;
    const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d(1), size: 10 };
    const bytes = deltaManifest(
      subject,
      { mediaType: INDEX_MEDIA_TYPE, digest: d(2), size: 5 },
      [{ mediaType: PACK_MEDIA_TYPE, digest: d(3), size: 7 }],
      { digest: d(4), size: 4096 },
      [{ digest: d(5), size: 9, fromImage: d(6), fromSlot: d(7), fromSize: 4096 }],
    );
    const m = parseDeltaManifest(bytes, d(1));
    expect(patchesOf(m)).toEqual([{ digest: d(5), size: 9, fromImage: d(6), fromSlot: d(7), fromSize: 4096 }]);
    const json = JSON.parse(bytes.toString()) as { layers: { annotations?: Record<string, string> }[] };
    delete json.layers[2].annotations;
    expect(() => parseDeltaManifest(Buffer.from(JSON.stringify(json)), d(1))).toThrow(/does not say which slot image/);
    const swapped = JSON.parse(bytes.toString()) as { layers: unknown[] };
    swapped.layers = [swapped.layers[0], swapped.layers[2], swapped.layers[1]];
    expect(() => parseDeltaManifest(Buffer.from(JSON.stringify(swapped)), d(1))).toThrow(/not \[chunk index, packs\.\.\., patches\.\.\.\]/);
  });
});

describe('squashfs slot images (an image whose image.json asks for squashfs slots)', () => {
  const squashTree = async (name: string) => {
    const tree = join(dir, name);
    await mkdir(join(tree, 'usr/lib/edgeplane'), { recursive: true });
    await writeFile(join(tree, 'usr/lib/edgeplane/image.json'), `${JSON.stringify({ name: 'Edgeplane OS', version: '7.0.0', slotFilesystem: 'squashfs' })}\n`);
    await writeFile(join(tree, 'usr/lib/edgeplane/payload'), data(512 * 1024));
    return tree;
  };
  const record = { digest: 'sha256:7777', image: 'registry.lan/os:7.0.0', name: 'Edgeplane OS', version: '7.0.0', writtenAt: '2026-01-01T00:00:00.000Z' };

  it('are squashfs, the same bytes from the same tree, and a slot written from one keeps it with its record', async () => {
    const one = join(dir, 'sq-1.img');
    const two = join(dir, 'sq-2.img');
    // The same tree twice, a second apart: its record is written again each time.
    const tree = await squashTree('sq-tree-1');
    await buildSlotImage(tree, one, undefined, undefined, record);
    await new Promise((r) => setTimeout(r, 1100));
    await buildSlotImage(tree, two, undefined, undefined, record);
    const bytes = await readFile(one);
    expect(bytes.subarray(0, 4).toString()).toBe('hsqs');
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(
      createHash('sha256')
        .update(await readFile(two))
        .digest('hex'),
    );

    const slots = new LinuxSlots({ root: dir, targets: { B: join(dir, 'sq-slot-b.img') } });
    await slots.writeSlotImage(
      'B',
      (path) => copyFile(one, path),
      (info) => ({ ...record, name: JSON.parse(info ?? '{}').name }),
    );
    expect(await slots.readSlot('B')).toEqual(record);
    expect(await readFile(join(dir, 'sq-slot-b.img'))).toEqual(bytes);
  });

  it('a squashfs slot image recording another digest is refused: its record cannot be rewritten', async () => {
    const image = join(dir, 'sq-other.img');
    await buildSlotImage(await squashTree('sq-tree-3'), image, undefined, undefined, record);
    const slots = new LinuxSlots({ root: dir, targets: { A: join(dir, 'sq-slot-a.img') } });
    const err = await slots
      .writeSlotImage(
        'A',
        (path) => copyFile(image, path),
        () => ({ ...record, digest: 'sha256:8888' }),
      )
      .catch((e: Error) => e);
    expect((err as Error).message).toBe('slot verification failed: the squashfs slot image records sha256:7777, not sha256:8888');
    expect(await slots.readSlot('A')).toBeUndefined();
  });
});
