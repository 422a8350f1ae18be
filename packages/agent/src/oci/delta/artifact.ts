import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { RegistryClient } from '../registry-client.js';
import { Descriptor, MEDIA, OciError } from '../types.js';
import { type ChunkIndex, DELTA_ARTIFACT_TYPE, decodeIndex, INDEX_MEDIA_TYPE, MAX_PACKS, PACK_MEDIA_TYPE } from './chunk-index.js';

/**
 * The delta artifact of an OS image in its registry (docs/delta-updates.md): an OCI image manifest
 * with artifactType DELTA_ARTIFACT_TYPE, the empty config, layers [chunk index, pack 0, pack 1, ...]
 * and `subject` = the OS image manifest. Shared by the publisher (publish.ts, `edgeplane image
 * delta`) and the agent (os manager), so both read and write one format.
 *
 * Found through the referrers API (OCI distribution spec v1.1.0, spec.md "Listing Referrers") where
 * the registry serves it, else through the tag DELTA_TAG(digest): `sha256-<hex>.delta`, modelled on
 * the spec's referrers tag schema (spec.md "Referrers Tag Schema": `<alg>-<ref>`, an index of
 * referrers kept by clients when the registry has no referrers API; the publisher keeps that index
 * too) with a suffix, as cosign's `.sig` tags do, so the agent needs one GET, not two.
 */
export const EMPTY_CONFIG = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
} as const;
export const EMPTY_CONFIG_BYTES = Buffer.from('{}');

/** Annotation on the delta manifest: sha256 of the slot image it rebuilds (also in the index). */
export const SLOT_DIGEST_ANNOTATION = 'io.edgeplane.slot.digest';

export const DeltaManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA.ociManifest),
  artifactType: z.literal(DELTA_ARTIFACT_TYPE),
  config: Descriptor,
  layers: z
    .array(Descriptor)
    .min(2)
    .max(1 + MAX_PACKS),
  subject: Descriptor,
  annotations: z.record(z.string(), z.string()).optional(),
});
export type DeltaManifest = z.infer<typeof DeltaManifest>;

/** The fallback tag of an image's delta artifact. */
export function deltaTag(imageDigest: string): string {
  return `${imageDigest.replace(':', '-')}.delta`;
}

/** The referrers tag schema's tag of an image (distribution spec v1.1.0): `sha256-<hex>`. */
export function referrersTag(imageDigest: string): string {
  return imageDigest.replace(':', '-');
}

export function deltaManifest(subject: Descriptor, index: Descriptor, packs: Descriptor[], slotDigest: string): Buffer {
  const manifest: DeltaManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    artifactType: DELTA_ARTIFACT_TYPE,
    config: { ...EMPTY_CONFIG },
    layers: [index, ...packs],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { [SLOT_DIGEST_ANNOTATION]: slotDigest },
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** Checks a delta manifest's shape and that it is about `imageDigest`. Throws OciError('BadManifest'). */
export function parseDeltaManifest(bytes: Buffer, imageDigest: string): DeltaManifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OciError('BadManifest', 'delta manifest is not JSON');
  }
  const parsed = DeltaManifest.safeParse(json);
  if (!parsed.success) throw new OciError('BadManifest', `not an Edgeplane delta manifest: ${parsed.error.issues[0]?.message}`);
  const m = parsed.data;
  if (m.subject.digest !== imageDigest) throw new OciError('BadManifest', `delta manifest is for ${m.subject.digest}, not ${imageDigest}`);
  if (m.layers[0].mediaType !== INDEX_MEDIA_TYPE || m.layers.slice(1).some((l) => l.mediaType !== PACK_MEDIA_TYPE))
    throw new OciError('BadManifest', 'delta manifest layers are not [chunk index, packs...]');
  return m;
}

export interface FoundDelta {
  manifestDigest: string;
  manifest: DeltaManifest;
  index: ChunkIndex;
  /** Blob digests of the packs, by pack number. */
  packs: string[];
  /** How it was found. */
  via: 'referrers' | 'tag';
}

/**
 * Looks up the delta artifact of `imageDigest`: the referrers API first, then the fallback tag.
 * Undefined when there is none. The manifest and the index are verified against their digests.
 */
export async function findDelta(client: RegistryClient, imageDigest: string, signal?: AbortSignal): Promise<FoundDelta | undefined> {
  let manifestDigest: string | undefined;
  let via: FoundDelta['via'] = 'referrers';
  const referrers = await client.getReferrers(imageDigest, DELTA_ARTIFACT_TYPE, signal);
  if (referrers) {
    const list = z.object({ manifests: z.array(Descriptor.extend({ artifactType: z.string().optional() })) }).safeParse(JSON.parse(referrers.toString('utf8')));
    const entry = list.success ? list.data.manifests.find((d) => d.artifactType === DELTA_ARTIFACT_TYPE) : undefined;
    manifestDigest = entry?.digest;
  }
  let bytes: Buffer;
  if (manifestDigest) {
    bytes = (await client.getManifest(manifestDigest, signal)).bytes;
    if (sha256(bytes) !== manifestDigest) throw new OciError('DigestMismatch', `delta manifest ${manifestDigest} does not match its digest`);
  } else {
    via = 'tag';
    try {
      bytes = (await client.getManifest(deltaTag(imageDigest), signal)).bytes;
    } catch (err) {
      if (err instanceof OciError && err.code === 'NotFound') return undefined;
      throw err;
    }
    manifestDigest = sha256(bytes);
  }
  const manifest = parseDeltaManifest(bytes, imageDigest);
  const indexDesc = manifest.layers[0];
  if (indexDesc.size > 64 * 1024 * 1024) throw new OciError('TooLarge', `chunk index ${indexDesc.digest} is ${indexDesc.size} bytes; refused`);
  const indexBytes = await client.getRange(indexDesc.digest, 0, indexDesc.size, signal);
  if (sha256(indexBytes) !== indexDesc.digest) throw new OciError('DigestMismatch', `chunk index ${indexDesc.digest} does not match its digest`);
  const index = decodeIndex(indexBytes);
  const packs = manifest.layers.slice(1).map((l) => l.digest);
  if (index.entries.some((e) => e.pack >= packs.length)) throw new OciError('BadManifest', 'chunk index names a pack the delta manifest does not list');
  return { manifestDigest, manifest, index, packs, via };
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
