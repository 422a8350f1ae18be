import { z } from 'zod';

/** Media types of the OCI image spec and the Docker v2 schema2 equivalents registries still serve. */
export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  /** Decompressed with the zstd program (extract.ts): Edgeplane OS 2 devices carry it. */
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

export const OciDigest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 hex>');

export const Descriptor = z.object({
  mediaType: z.string(),
  digest: OciDigest,
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z.object({ architecture: z.string(), os: z.string(), variant: z.string().optional() }).optional(),
});
export type Descriptor = z.infer<typeof Descriptor>;

export const ImageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: Descriptor,
  layers: z.array(Descriptor).max(256),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof ImageManifest>;

export const ImageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(Descriptor).max(1024),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageIndex = z.infer<typeof ImageIndex>;

export const ImageConfig = z.object({
  architecture: z.string(),
  os: z.string(),
  config: z
    .object({ Labels: z.record(z.string(), z.string()).nullish() })
    .partial()
    .optional(),
  rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(OciDigest) }),
});
export type ImageConfig = z.infer<typeof ImageConfig>;

export type OciErrorCode = 'DigestMismatch' | 'TooLarge' | 'NotFound' | 'Unauthorized' | 'BadManifest' | 'BadReference' | 'Unavailable' | 'LayerUnsafe';

/**
 * A failure of an OCI pull. `retryable` says whether trying again can help: a network error or a
 * 5xx can; a digest mismatch, a missing manifest or an oversized blob cannot.
 */
export class OciError extends Error {
  constructor(
    readonly code: OciErrorCode,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'OciError';
  }
}

/** Node's process.arch as an OCI platform architecture. */
export function ociArch(nodeArch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[nodeArch] ?? nodeArch;
}
