import { createHash } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync } from 'node:zlib';
import { OciError } from '../types.js';
import { CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, chunkFile } from './chunker.js';

/**
 * The chunk index of a slot image (docs/delta-updates.md): the image cut into content-defined
 * chunks (chunker.ts), each chunk compressed once into a "pack" blob, and this index saying, for
 * each chunk of the image in order, its sha256 and length and where its compressed bytes are in
 * the pack. A device rebuilds the image from chunks it already has (its active and recovery slots)
 * and fetches only the others from the pack with HTTP range requests.
 *
 * Binary, big-endian, gzip-compressed as a whole:
 *   magic "EPCHIDX2" | u64 image size | 32 B image sha256 | u32 avg | u32 min | u32 max | u32 count
 *   count x { 32 B chunk sha256 | u32 length | u8 pack | u64 pack offset | u32 packed length | u8 codec }
 * codec: 0 stored, 1 gzip, 2 brotli. A chunk that repeats (zeroes) points to one copy in the pack.
 * `pack` numbers the packs in the order the delta artifact's manifest lists them after the index
 * (artifact.ts): an image's index points into the packs published with earlier images for the
 * chunks those already hold, so the registry stores each chunk once.
 */
export const INDEX_MAGIC = Buffer.from('EPCHIDX2', 'latin1');
export const INDEX_MEDIA_TYPE = 'application/vnd.edgeplane.slot.chunk-index.v1+gzip';
export const PACK_MEDIA_TYPE = 'application/vnd.edgeplane.slot.chunk-pack.v1';
/** Brotli of a VCDIFF (RFC 3284, as xdelta3 -S none writes it) from an earlier release's exact slot image to this one's (patch.ts). */
export const PATCH_MEDIA_TYPE = 'application/vnd.edgeplane.slot.patch.v1.vcdiff.brotli';
/** artifactType of the referrer manifest that carries index + pack for an OS image. */
export const DELTA_ARTIFACT_TYPE = 'application/vnd.edgeplane.slot.delta.v1';

const HEADER = 8 + 8 + 32 + 4 * 4;
const ENTRY = 32 + 4 + 1 + 8 + 4 + 1;
/** Most packs one index may point into. */
export const MAX_PACKS = 32;
/** Largest index accepted: 64 MiB of entries is an image of ~80 GiB. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export const CODEC = { stored: 0, gzip: 1, brotli: 2 } as const;
export type Codec = (typeof CODEC)[keyof typeof CODEC];

export interface IndexEntry {
  hash: Buffer;
  length: number;
  /** Which pack (0-based, in the artifact manifest's order) holds the chunk. */
  pack: number;
  packOffset: number;
  packLength: number;
  codec: Codec;
}

export interface ChunkIndex {
  /** Length of the slot image in bytes. */
  size: number;
  /** sha256 of the whole slot image: checked after the image is rebuilt. */
  digest: string;
  entries: IndexEntry[];
}

export function encodeIndex(index: ChunkIndex): Buffer {
  const out = Buffer.alloc(HEADER + ENTRY * index.entries.length);
  INDEX_MAGIC.copy(out, 0);
  out.writeBigUInt64BE(BigInt(index.size), 8);
  Buffer.from(hexOf(index.digest), 'hex').copy(out, 16);
  out.writeUInt32BE(CHUNK_AVG, 48);
  out.writeUInt32BE(CHUNK_MIN, 52);
  out.writeUInt32BE(CHUNK_MAX, 56);
  out.writeUInt32BE(index.entries.length, 60);
  let at = HEADER;
  for (const e of index.entries) {
    e.hash.copy(out, at);
    out.writeUInt32BE(e.length, at + 32);
    out.writeUInt8(e.pack, at + 36);
    out.writeBigUInt64BE(BigInt(e.packOffset), at + 37);
    out.writeUInt32BE(e.packLength, at + 45);
    out.writeUInt8(e.codec, at + 49);
    at += ENTRY;
  }
  return gzipSync(out, { level: 9 });
}

/** Parses and checks an index: the entries must tile the image exactly. Throws OciError('BadManifest') otherwise. */
export function decodeIndex(compressed: Buffer): ChunkIndex {
  let buf: Buffer;
  try {
    buf = gunzipSync(compressed, { maxOutputLength: MAX_INDEX_BYTES });
  } catch (err) {
    throw new OciError('BadManifest', `chunk index is not gzip or too large: ${(err as Error).message}`);
  }
  const bad = (why: string) => new OciError('BadManifest', `chunk index: ${why}`);
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(INDEX_MAGIC)) throw bad('unknown format (no EPCHIDX2 magic)');
  const size = Number(buf.readBigUInt64BE(8));
  const digest = `sha256:${buf.subarray(16, 48).toString('hex')}`;
  const count = buf.readUInt32BE(60);
  if (buf.length !== HEADER + count * ENTRY) throw bad(`length ${buf.length} does not match ${count} entries`);
  const entries: IndexEntry[] = [];
  let total = 0;
  for (let i = 0, at = HEADER; i < count; i++, at += ENTRY) {
    const e: IndexEntry = {
      hash: Buffer.from(buf.subarray(at, at + 32)),
      length: buf.readUInt32BE(at + 32),
      pack: buf.readUInt8(at + 36),
      packOffset: Number(buf.readBigUInt64BE(at + 37)),
      packLength: buf.readUInt32BE(at + 45),
      codec: buf.readUInt8(at + 49) as Codec,
    };
    if (e.pack >= MAX_PACKS) throw bad(`entry ${i} names pack ${e.pack}`);
    if (e.length === 0 || e.length > CHUNK_MAX) throw bad(`entry ${i} has length ${e.length}`);
    if (e.codec > 2) throw bad(`entry ${i} has unknown codec ${e.codec}`);
    if (e.packLength === 0 || e.packLength > CHUNK_MAX + 1024) throw bad(`entry ${i} has packed length ${e.packLength}`);
    total += e.length;
    entries.push(e);
  }
  if (total !== size) throw bad(`chunks add up to ${total} bytes, the image has ${size}`);
  return { size, digest, entries };
}

/** Compresses one chunk with `codec` (the smaller of it and the stored bytes). */
export function packChunk(data: Uint8Array, codec: Codec): { bytes: Buffer; codec: Codec } {
  if (codec === CODEC.stored) return { bytes: Buffer.from(data), codec };
  const packed =
    codec === CODEC.gzip
      ? gzipSync(data, { level: 9 })
      : brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 9, [constants.BROTLI_PARAM_LGWIN]: 22 } });
  return packed.length < data.length ? { bytes: packed, codec } : { bytes: Buffer.from(data), codec: CODEC.stored };
}

/** The chunk's bytes from its packed form, checked against its sha256 and length. Throws OciError('DigestMismatch'). */
export function unpackChunk(packed: Buffer, entry: IndexEntry): Buffer {
  let data: Buffer;
  try {
    data =
      entry.codec === CODEC.stored
        ? packed
        : entry.codec === CODEC.gzip
          ? gunzipSync(packed, { maxOutputLength: CHUNK_MAX })
          : brotliDecompressSync(packed, { maxOutputLength: CHUNK_MAX });
  } catch (err) {
    throw new OciError('DigestMismatch', `chunk ${entry.hash.toString('hex')} does not decompress: ${(err as Error).message}`);
  }
  if (data.length !== entry.length || !createHash('sha256').update(data).digest().equals(entry.hash))
    throw new OciError('DigestMismatch', `chunk ${entry.hash.toString('hex')} does not match its sha256`);
  return data;
}

/**
 * Builds the index and the pack of a slot image: every distinct chunk compressed once, in image
 * order, appended to `writePack`. Returns the index. `known` are chunks already published (in
 * earlier images' packs, entries with their pack numbers as this index will list them): those are
 * pointed to, not packed again; new chunks go into pack number `pack`.
 */
export async function buildChunkIndex(
  image: string,
  writePack: (bytes: Buffer) => void | Promise<void>,
  options: { codec?: Codec; signal?: AbortSignal; known?: Map<string, IndexEntry>; pack?: number } = {},
): Promise<ChunkIndex> {
  const codec = options.codec ?? CODEC.brotli;
  const pack = options.pack ?? 0;
  const seen = new Map<string, IndexEntry>(options.known ?? []);
  const entries: IndexEntry[] = [];
  let packed = 0;
  const { digest, size } = await chunkFile(
    image,
    async (c) => {
      const key = c.hash.toString('hex');
      let e = seen.get(key);
      if (!e) {
        const p = packChunk(c.data, codec);
        e = { hash: c.hash, length: c.length, pack, packOffset: packed, packLength: p.bytes.length, codec: p.codec };
        seen.set(key, e);
        packed += p.bytes.length;
        await writePack(p.bytes);
      }
      entries.push(e);
    },
    { signal: options.signal },
  );
  return { size, digest, entries };
}

function hexOf(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new OciError('BadManifest', `not a sha256 digest: ${digest}`);
  return m[1];
}
