import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

/**
 * Content-defined chunking of a slot image (FastCDC: Xia et al., "FastCDC: a Fast and Efficient
 * Content-Defined Chunking Approach for Data Deduplication", USENIX ATC 2016), with casync's sizes:
 * 64 KiB average, a quarter of it minimum, four times it maximum (casync's --chunk-size defaults).
 * A cut depends only on the 32 bytes before it, so an insertion or removal moves the boundaries
 * near it only and the rest of the image cuts into the same chunks: what a device already has in
 * its active slot is found again by content.
 *
 * Written here rather than taken from npm: the cut points are part of the index format (the builder
 * and every agent version must cut alike), so the gear table and masks are pinned below.
 */
export const CHUNK_AVG = 64 * 1024;
export const CHUNK_MIN = CHUNK_AVG / 4;
export const CHUNK_MAX = CHUNK_AVG * 4;

/** 256 pseudo-random 32-bit values: sha256("edgeplane-cdc-<i>"), first 4 bytes, big-endian. Pinned by the format. */
const GEAR = new Uint32Array(256);
for (let i = 0; i < 256; i++) GEAR[i] = createHash('sha256').update(`edgeplane-cdc-${i}`).digest().readUInt32BE(0);

// Normalized chunking (FastCDC level 2): a harder mask (18 bits) before the average size, an easier
// one (14 bits) after it, so chunk sizes gather around the average. The high bits of the gear hash
// hold the most recent bytes' influence, so the masks take the top bits.
const MASK_S = (0xffffffff << (32 - 18)) >>> 0;
const MASK_L = (0xffffffff << (32 - 14)) >>> 0;

/** Length of the chunk that starts at `start` in buf[start, end); `final` when no more data follows. */
export function cutPoint(buf: Uint8Array, start: number, end: number, final: boolean): number {
  const n = end - start;
  if (n <= CHUNK_MIN) return final ? n : -1;
  const limit = Math.min(n, CHUNK_MAX);
  const normal = Math.min(limit, CHUNK_AVG);
  let hash = 0;
  let i = CHUNK_MIN;
  for (; i < normal; i++) {
    hash = ((hash << 1) + GEAR[buf[start + i]]) >>> 0;
    if ((hash & MASK_S) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    hash = ((hash << 1) + GEAR[buf[start + i]]) >>> 0;
    if ((hash & MASK_L) === 0) return i + 1;
  }
  if (limit === CHUNK_MAX || final) return limit;
  return -1; // needs more data to decide
}

export interface Chunk {
  /** Byte offset in the image. */
  offset: number;
  length: number;
  /** sha256 of the chunk's bytes. */
  hash: Buffer;
  /** The bytes (a view valid only during the callback). */
  data: Uint8Array;
}

/**
 * Cuts a file (an image file or a block device) into chunks, calling `onChunk` for each in order;
 * returns the sha256 of the whole file and its length. `length` limits the read (a block device
 * larger than the image it holds); `digest: false` skips the whole file's sha256 (a seed, whose
 * chunks are all that matters: one hash pass instead of two), and the digest returned is ''.
 */
export async function chunkFile(
  path: string,
  onChunk: (chunk: Chunk) => void | Promise<void>,
  options: { length?: number; signal?: AbortSignal; digest?: boolean } = {},
): Promise<{ digest: string; size: number }> {
  const fh = await open(path, 'r');
  const whole = options.digest === false ? undefined : createHash('sha256');
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024 + CHUNK_MAX);
  let filled = 0;
  let pos = 0; // file offset of buf[0]
  let readAt = 0;
  let eof = false;
  const limit = options.length ?? Number.POSITIVE_INFINITY;
  try {
    for (;;) {
      if (!eof && filled < buf.length) {
        const want = Math.min(buf.length - filled, limit - readAt);
        const { bytesRead } = want > 0 ? await fh.read(buf, filled, want, readAt) : { bytesRead: 0 };
        filled += bytesRead;
        readAt += bytesRead;
        if (bytesRead === 0) eof = true;
        if (!eof && filled < buf.length) continue;
      }
      options.signal?.throwIfAborted();
      let start = 0;
      for (;;) {
        const len = cutPoint(buf, start, filled, eof);
        if (len <= 0) break;
        const data = buf.subarray(start, start + len);
        whole?.update(data);
        await onChunk({ offset: pos + start, length: len, hash: createHash('sha256').update(data).digest(), data });
        start += len;
      }
      if (eof && start === filled) break;
      buf.copy(buf, 0, start, filled);
      pos += start;
      filled -= start;
    }
  } finally {
    await fh.close();
  }
  return { digest: whole ? `sha256:${whole.digest('hex')}` : '', size: readAt };
}
