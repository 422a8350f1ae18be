import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hexOf } from './blob-store.js';
import type { ManifestResponse } from './registry-client.js';
import { ImageIndex, OciError } from './types.js';

export const LAYOUT_FILE = 'oci-layout';
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/**
 * Reads an OCI image layout directory (image-spec "image layout": oci-layout, index.json,
 * blobs/sha256/<hex>), the air-gapped source of OS images. It serves the same calls as the
 * registry client, so a pull from a layout is verified exactly like a pull from a registry.
 */
export class OciLayoutSource {
  constructor(readonly dir: string) {}

  async index(): Promise<ImageIndex> {
    const raw = await readFile(join(this.dir, 'index.json'), 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new OciError(err.code === 'ENOENT' ? 'NotFound' : 'Unavailable', `${this.dir} is not an OCI image layout: ${err.message}`);
    });
    const parsed = ImageIndex.safeParse(JSON.parse(raw));
    if (!parsed.success) throw new OciError('BadManifest', `${this.dir}/index.json is not an OCI image index`);
    return parsed.data;
  }

  /** The manifest digest a tag (org.opencontainers.image.ref.name) points to. */
  async resolve(tag: string): Promise<string> {
    const found = (await this.index()).manifests.find((m) => m.annotations?.[REF_NAME_ANNOTATION] === tag);
    if (!found) throw new OciError('NotFound', `no image tagged ${tag} in ${this.dir}`);
    return found.digest;
  }

  async getManifest(digest: string): Promise<ManifestResponse> {
    const path = this.blobPath(digest);
    const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      throw new OciError('NotFound', `manifest ${digest} not found in ${this.dir} (${err.code})`);
    });
    return { bytes, mediaType: '' };
  }

  async openBlob(digest: string, offset: number): Promise<{ stream: AsyncIterable<Uint8Array>; offset: number }> {
    const path = this.blobPath(digest);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) throw new OciError('NotFound', `blob ${digest} not found in ${this.dir}`);
    const start = Math.min(offset, st.size);
    return { stream: createReadStream(path, { start }), offset: start };
  }

  private blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }
}
