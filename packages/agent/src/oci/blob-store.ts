import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Descriptor, OciError } from './types.js';

/** Opens a blob at a byte offset. `offset` in the result is where the stream really starts (0 when the source cannot resume). */
export type OpenBlob = (digest: string, offset: number, signal?: AbortSignal) => Promise<{ stream: AsyncIterable<Uint8Array>; offset: number }>;

export interface IngestOptions {
  maxBytes: number;
  signal?: AbortSignal;
  /** Called with the bytes of this blob written so far (including resumed bytes). */
  onBytes?: (bytes: number) => void;
}

/**
 * Content-addressed blob storage laid out like an OCI image layout (`blobs/sha256/<hex>`), used as
 * the agent's download cache. A blob is written to `<hex>.partial` while it streams in and only
 * renamed to its final name after its size and sha256 matched the descriptor, so anything under
 * its final name is verified. A `.partial` left by an interrupted download is resumed.
 */
export class BlobStore {
  constructor(readonly dir: string) {}

  path(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  async has(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    const st = await stat(this.path(desc.digest)).catch(() => undefined);
    return st?.isFile() === true && st.size === desc.size;
  }

  /** Stores small verified content (a manifest) under its digest. */
  async put(digest: string, bytes: Buffer): Promise<void> {
    verifyDigest(digest, bytes);
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const partial = `${this.path(digest)}.partial`;
    const fh = await open(partial, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(partial, this.path(digest));
  }

  read(digest: string): Promise<Buffer> {
    return readFile(this.path(digest));
  }

  /**
   * Downloads `desc` through `openBlob` unless it is already stored, resuming a partial download.
   * Refuses (and deletes) content whose size or digest differs from the descriptor.
   */
  async ingest(desc: Descriptor, openBlob: OpenBlob, options: IngestOptions): Promise<void> {
    if (desc.size > options.maxBytes) throw new OciError('TooLarge', `blob ${desc.digest} is ${desc.size} bytes, more than the limit of ${options.maxBytes}`);
    if (await this.has(desc)) {
      options.onBytes?.(desc.size);
      return;
    }
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const final = this.path(desc.digest);
    const partial = `${final}.partial`;
    const hash = createHash('sha256');
    let have = (await stat(partial).catch(() => undefined))?.size ?? 0;
    if (have > desc.size) {
      await rm(partial, { force: true });
      have = 0;
    }
    // Re-hash what is already on disk so the final digest covers the whole blob.
    if (have > 0) for await (const chunk of createReadStream(partial, { end: have - 1 })) hash.update(chunk as Buffer);
    const { stream, offset } = await openBlob(desc.digest, have, options.signal);
    let hasher = hash;
    if (offset !== have) {
      // The source cannot resume (no Range support): start over.
      await rm(partial, { force: true });
      hasher = createHash('sha256');
      have = 0;
    }
    await this.write(desc, partial, hasher, have, stream, options);
    await rename(partial, final);
  }

  private async write(
    desc: Descriptor,
    partial: string,
    hash: ReturnType<typeof createHash>,
    start: number,
    stream: AsyncIterable<Uint8Array>,
    options: IngestOptions,
  ): Promise<void> {
    const fh = await open(partial, start > 0 ? 'a' : 'w');
    let written = start;
    try {
      for await (const chunk of stream) {
        options.signal?.throwIfAborted();
        written += chunk.byteLength;
        if (written > desc.size) {
          await fh.close().catch(() => {});
          await rm(partial, { force: true });
          throw new OciError('DigestMismatch', `blob ${desc.digest} is larger than its descriptor's ${desc.size} bytes; refused`);
        }
        hash.update(chunk);
        await fh.write(chunk);
        options.onBytes?.(written);
      }
      await fh.sync();
    } catch (err) {
      if (err instanceof OciError || options.signal?.aborted) throw err;
      // A dropped connection: what arrived stays in the .partial file and the next attempt resumes.
      throw new OciError('Unavailable', `blob ${desc.digest} download interrupted after ${written} of ${desc.size} bytes: ${(err as Error).message}`, true);
    } finally {
      await fh.close().catch(() => {});
    }
    if (written < desc.size) throw new OciError('Unavailable', `blob ${desc.digest} download ended after ${written} of ${desc.size} bytes; will resume`, true);
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== desc.digest) {
      await rm(partial, { force: true });
      throw new OciError('DigestMismatch', `blob ${desc.digest} does not match its digest (downloaded content is ${got}); refused and deleted`);
    }
  }

  /** Deletes every blob and partial download. */
  async clear(): Promise<void> {
    await rm(join(this.dir, 'blobs'), { recursive: true, force: true });
  }
}

export function hexOf(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new OciError('BadReference', `unsupported digest ${digest} (only sha256 is accepted)`);
  return m[1];
}

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function verifyDigest(digest: string, bytes: Buffer): void {
  const got = sha256Digest(bytes);
  if (got !== digest) throw new OciError('DigestMismatch', `content for ${digest} does not match its digest (got ${got}); refused`);
}
