import type { BlobStore, OpenBlob } from './blob-store.js';
import { verifyDigest } from './blob-store.js';
import type { ManifestResponse } from './registry-client.js';
import { ImageConfig, ImageIndex, ImageManifest, MEDIA, OciError, ociArch } from './types.js';

export interface PullSource {
  getManifest(digest: string, signal?: AbortSignal): Promise<ManifestResponse>;
  openBlob: OpenBlob;
}

export interface PullOptions {
  source: PullSource;
  /** Pinned digest: of an image manifest, or of an index from which the platform's manifest is picked. */
  digest: string;
  store: BlobStore;
  /** OCI architecture to pick from an index; default the host's. */
  arch?: string;
  /** Largest accepted blob, default 8 GiB. */
  maxBlobBytes?: number;
  onProgress?: (progress: { bytes: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface PulledImage {
  /** Digest of the image manifest (differs from the pinned digest when that named an index). */
  manifestDigest: string;
  manifest: ImageManifest;
  config: ImageConfig;
}

/**
 * Pulls an image by digest into `store`: the manifest (verified against the pinned digest; an
 * index or Docker manifest list resolves to the linux/<arch> entry), the config and every layer,
 * each verified by size and sha256 while streaming. Blobs already in the store are skipped and
 * partial downloads are resumed, so calling it again after an interruption continues the pull.
 */
export async function pullImage(options: PullOptions): Promise<PulledImage> {
  const maxBytes = options.maxBlobBytes ?? 8 * 1024 ** 3;
  const { manifestDigest, manifest } = await resolveManifest(options, options.digest, 0);
  const config = await fetchConfig(options, manifest, maxBytes);
  const total = manifest.layers.reduce((sum, l) => sum + l.size, 0);
  let done = 0;
  for (const layer of manifest.layers) {
    if (!isLayerType(layer.mediaType)) throw new OciError('BadManifest', `layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
    await options.store.ingest(layer, options.source.openBlob, {
      maxBytes,
      signal: options.signal,
      onBytes: (bytes) => options.onProgress?.({ bytes: done + bytes, total }),
    });
    done += layer.size;
  }
  if (config.rootfs.diff_ids.length !== manifest.layers.length)
    throw new OciError('BadManifest', `image ${manifestDigest}: config lists ${config.rootfs.diff_ids.length} layers, manifest ${manifest.layers.length}`);
  return { manifestDigest, manifest, config };
}

async function resolveManifest(options: PullOptions, digest: string, depth: number): Promise<{ manifestDigest: string; manifest: ImageManifest }> {
  const { bytes, mediaType } = await options.source.getManifest(digest, options.signal);
  verifyDigest(digest, bytes);
  let json: { mediaType?: string; manifests?: unknown };
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OciError('BadManifest', `manifest ${digest} is not JSON`);
  }
  const type = json.mediaType ?? mediaType;
  if (type === MEDIA.ociIndex || type === MEDIA.dockerList || Array.isArray(json.manifests)) {
    if (depth > 0) throw new OciError('BadManifest', `index ${digest} points to another index`);
    const index = ImageIndex.safeParse(json);
    if (!index.success) throw new OciError('BadManifest', `index ${digest} is malformed`);
    const arch = options.arch ?? ociArch();
    const entry = index.data.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === arch);
    if (!entry) throw new OciError('NotFound', `index ${digest} has no image for linux/${arch}`);
    return resolveManifest(options, entry.digest, depth + 1);
  }
  const manifest = ImageManifest.safeParse(json);
  if (!manifest.success) throw new OciError('BadManifest', `manifest ${digest} is not an OCI or Docker v2 image manifest`);
  await options.store.put(digest, bytes);
  return { manifestDigest: digest, manifest: manifest.data };
}

async function fetchConfig(options: PullOptions, manifest: ImageManifest, maxBytes: number): Promise<ImageConfig> {
  const desc = manifest.config;
  if (desc.size > 1024 * 1024) throw new OciError('TooLarge', `image config ${desc.digest} is ${desc.size} bytes; refused`);
  await options.store.ingest(desc, options.source.openBlob, { maxBytes, signal: options.signal });
  const parsed = ImageConfig.safeParse(JSON.parse((await options.store.read(desc.digest)).toString('utf8')));
  if (!parsed.success) throw new OciError('BadManifest', `image config ${desc.digest} is malformed`);
  if (parsed.data.os !== 'linux') throw new OciError('BadManifest', `image is for ${parsed.data.os}, not linux`);
  return parsed.data;
}

function isLayerType(mediaType: string): boolean {
  return [MEDIA.ociLayerGzip, MEDIA.ociLayerZstd, MEDIA.ociLayerTar, MEDIA.dockerLayerGzip].includes(mediaType as never);
}
