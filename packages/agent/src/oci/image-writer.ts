import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { c } from 'tar';
import { sha256Digest } from './blob-store.js';
import { LAYOUT_FILE, REF_NAME_ANNOTATION } from './layout.js';
import { type Descriptor, ImageIndex, MEDIA, ociArch } from './types.js';

export interface WriteImageOptions {
  /** Directory tree that becomes the image's single layer (the root filesystem). */
  rootfs: string;
  /** OCI layout directory to write into; created if missing, an existing index.json gains the new tag. */
  layoutDir: string;
  /** Tag recorded as org.opencontainers.image.ref.name (replaces an entry with the same tag). */
  tag: string;
  /** OCI architecture, default the host's. */
  arch?: string;
  labels?: Record<string, string>;
}

export interface WrittenImage {
  /** Manifest digest: what a profile pins. */
  digest: string;
  size: number;
  layer: Descriptor;
}

/**
 * Builds a single-layer OCI image from a directory tree into an OCI image layout: a gzip tar layer
 * (portable headers, fixed mtime, so the same tree gives the same digests), the image config, the
 * manifest, and index.json + oci-layout. Used by tests to make OS images and by `edgeplane image build`.
 */
export async function writeOciImage(options: WriteImageOptions): Promise<WrittenImage> {
  const blobs = join(options.layoutDir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const layer = await writeLayer(options.rootfs, blobs);
  const config = Buffer.from(
    JSON.stringify({
      architecture: options.arch ?? ociArch(),
      os: 'linux',
      config: options.labels ? { Labels: options.labels } : {},
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    }),
  );
  const configDesc = await putBlob(blobs, MEDIA.ociConfig, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: configDesc,
      layers: [layer.desc],
      ...(options.labels ? { annotations: options.labels } : {}),
    }),
  );
  const manifestDesc = await putBlob(blobs, MEDIA.ociManifest, manifest);
  await writeFile(join(options.layoutDir, LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const indexPath = join(options.layoutDir, 'index.json');
  const existing = await readFile(indexPath, 'utf8').then(
    (t) => ImageIndex.parse(JSON.parse(t)).manifests,
    () => [],
  );
  const manifests = [
    ...existing.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== options.tag),
    { ...manifestDesc, annotations: { [REF_NAME_ANNOTATION]: options.tag } },
  ];
  await writeFile(indexPath, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests }));
  return { digest: manifestDesc.digest, size: manifestDesc.size, layer: layer.desc };
}

async function writeLayer(rootfs: string, blobs: string): Promise<{ desc: Descriptor; diffId: string }> {
  const entries = (await readdir(rootfs)).sort();
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let size = 0;
  const tmp = join(blobs, `layer-${process.pid}-${Date.now()}.tmp`);
  const tee = (hash: ReturnType<typeof createHash>, count = false) =>
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        if (count) size += chunk.length;
        cb(null, chunk);
      },
    });
  await pipeline(
    c({ cwd: rootfs, portable: true, mtime: new Date(0), noMtime: false }, entries),
    tee(diffHash),
    createGzip({ level: 6 }),
    tee(blobHash, true),
    createWriteStream(tmp),
  );
  const digest = `sha256:${blobHash.digest('hex')}`;
  await rename(tmp, join(blobs, digest.slice(7)));
  return { desc: { mediaType: MEDIA.ociLayerGzip, digest, size }, diffId: `sha256:${diffHash.digest('hex')}` };
}

async function putBlob(blobs: string, mediaType: string, bytes: Buffer): Promise<Descriptor> {
  const digest = sha256Digest(bytes);
  await writeFile(join(blobs, digest.slice(7)), bytes);
  return { mediaType, digest, size: bytes.length };
}
