import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { appendFile, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { constants, createBrotliCompress, createBrotliDecompress } from 'node:zlib';
import { OciError } from '../types.js';
import type { PatchLayer } from './artifact.js';
import { SlotImageWriter } from './slot-image.js';
import { decodeVcdiff } from './vcdiff.js';

/**
 * Binary patches between exact slot images (docs/delta-updates.md): xdelta3's VCDIFF from an
 * earlier release's published slot image to this one's, brotli-compressed as a whole. Measured on
 * two Edgeplane OS 2 slot images (bench/delta-updates.bench.ts), this moves several times fewer
 * bytes than the chunk index for a known (from, to) pair; it needs the device's active slot to be
 * that earlier slot image byte for byte, which the agent checks (sha256) before using it.
 *
 * Made with Debian's xdelta3 (`-S none`: plain RFC 3284 that vcdiff.ts decodes, brotli instead of
 * xdelta3's secondary compressors); applied by vcdiff.ts, which reads the source with positioned
 * reads, so a slot partition can be the source without a copy of it.
 */

/** sha256 of the first `length` bytes of a file or block device; undefined when it is shorter. */
export async function sha256Prefix(path: string, length: number, signal?: AbortSignal): Promise<string | undefined> {
  const fh = await open(path, 'r');
  try {
    const h = createHash('sha256');
    const buf = Buffer.alloc(4 * 1024 * 1024);
    let at = 0;
    while (at < length) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - at), at);
      if (bytesRead === 0) return undefined;
      h.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    return `sha256:${h.digest('hex')}`;
  } finally {
    await fh.close();
  }
}

export interface FetchPatchOptions {
  patch: PatchLayer;
  /** Reads `length` bytes of the patch blob from `offset` (an HTTP range request). */
  fetchRange: (offset: number, length: number, signal?: AbortSignal) => Promise<Buffer>;
  /** Where the download is kept across interruptions. */
  dir: string;
  signal?: AbortSignal;
  /** Bytes downloaded by this call so far. */
  onProgress?: (fetched: number, have: number) => void;
}

const PIECE = 4 * 1024 * 1024;

/**
 * Downloads the patch blob into `dir`, resuming from what an interrupted run left there, and checks
 * it against its digest (a blob that does not match is deleted). Returns its path and the bytes
 * this call downloaded.
 */
export async function fetchPatch(options: FetchPatchOptions): Promise<{ path: string; fetched: number }> {
  const { patch, signal } = options;
  await mkdir(options.dir, { recursive: true });
  const hex = patch.digest.replace('sha256:', '');
  const done = join(options.dir, hex);
  if ((await stat(done).catch(() => undefined))?.size === patch.size) return { path: done, fetched: 0 };
  const partial = join(options.dir, `${hex}.partial`);
  let have = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (have > patch.size) {
    await rm(partial, { force: true });
    have = 0;
  }
  let fetched = 0;
  while (have < patch.size) {
    signal?.throwIfAborted();
    const len = Math.min(PIECE, patch.size - have);
    const bytes = await options.fetchRange(have, len, signal);
    if (bytes.length !== len) throw new OciError('DigestMismatch', `patch ${patch.digest}: asked for ${len} bytes at ${have}, got ${bytes.length}`);
    await appendFile(partial, bytes);
    have += len;
    fetched += len;
    options.onProgress?.(fetched, have);
  }
  const h = createHash('sha256');
  for await (const chunk of createReadStream(partial)) h.update(chunk as Buffer);
  if (`sha256:${h.digest('hex')}` !== patch.digest) {
    await rm(partial, { force: true });
    throw new OciError('DigestMismatch', `patch ${patch.digest} does not match its digest`);
  }
  await rename(partial, done);
  return { path: done, fetched };
}

export interface ApplyPatchOptions {
  /** The downloaded patch blob (brotli of a VCDIFF). */
  patchBlob: string;
  /** The active slot (image file or block device) and the size of the slot image in it. */
  source: string;
  sourceSize: number;
  /** Where the new slot image is written, and what it must be. */
  target: string;
  targetSize: number;
  targetDigest: string;
  /** Scratch space for the decompressed VCDIFF. */
  workDir: string;
  signal?: AbortSignal;
  onProgress?: (written: number) => void;
}

/**
 * Writes the new slot image from the source and the patch and checks its sha256 against
 * `targetDigest` (OciError('DigestMismatch') otherwise: the caller falls back to the chunk index).
 */
export async function applyPatch(options: ApplyPatchOptions): Promise<void> {
  const vcdiff = join(options.workDir, 'patch.vcdiff');
  await mkdir(options.workDir, { recursive: true });
  // The VCDIFF without secondary compression is a few times the blob; never more than the target itself plus its instructions.
  const limit = options.targetSize + 64 * 1024 * 1024;
  let out = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      out += chunk.length;
      cb(out > limit ? new OciError('TooLarge', `the patch decompresses to more than ${limit} bytes`) : null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(options.patchBlob), createBrotliDecompress(), cap, createWriteStream(vcdiff), { signal: options.signal }).catch(
      (err: Error) => {
        options.signal?.throwIfAborted();
        if (err instanceof OciError) throw err;
        throw new OciError('BadManifest', `the patch does not decompress: ${err.message}`);
      },
    );
    const out = await SlotImageWriter.open(options.target);
    try {
      await decodeVcdiff({
        patch: vcdiff,
        source: options.source,
        sourceSize: options.sourceSize,
        signal: options.signal,
        write: async (data) => {
          if (out.written + data.length > options.targetSize)
            throw new OciError('DigestMismatch', `the patch writes more than the ${options.targetSize}-byte slot image`);
          await out.write(data);
          options.onProgress?.(out.written);
        },
      });
      await out.finish(options.targetSize, options.targetDigest);
    } finally {
      await out.close();
    }
  } finally {
    await rm(vcdiff, { force: true });
  }
}

/** Whether Debian's xdelta3 is on PATH (the publisher makes patches only then). */
export async function haveXdelta3(): Promise<boolean> {
  return promisify(execFile)('xdelta3', ['-V']).then(
    () => true,
    () => false,
  );
}

/**
 * Makes the patch blob from `from` to `to` (both slot image files) with Debian's xdelta3: -9, the
 * whole source as its window (-B, so a block that moved anywhere in the image is found), no
 * secondary compression (-S none; brotli below compresses the whole), no application header (-A).
 * Returns the blob's size.
 */
export async function makePatch(from: string, to: string, out: string, signal?: AbortSignal): Promise<number> {
  const fromSize = (await stat(from)).size;
  const vcdiff = `${out}.vcdiff`;
  let window = 1 << 24;
  while (window < fromSize) window *= 2;
  try {
    await promisify(execFile)('xdelta3', ['-e', '-f', '-9', '-S', 'none', '-A', '-B', String(window), '-s', from, to, vcdiff], { signal }).catch(
      (err: NodeJS.ErrnoException) => {
        signal?.throwIfAborted();
        if (err.code === 'ENOENT') throw new OciError('Unavailable', 'xdelta3 is not installed (Debian package xdelta3): no patch can be made');
        throw new OciError('Unavailable', `xdelta3 failed: ${err.message}`);
      },
    );
    const size = (await stat(vcdiff)).size;
    await pipeline(
      createReadStream(vcdiff),
      createBrotliCompress({
        params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24, [constants.BROTLI_PARAM_SIZE_HINT]: size },
      }),
      createWriteStream(out),
      { signal },
    );
    return (await stat(out)).size;
  } finally {
    await rm(vcdiff, { force: true });
  }
}
