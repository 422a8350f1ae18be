import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { RegistryClient } from '../registry-client.js';
import { Descriptor, MEDIA, OciError } from '../types.js';
import { type ChunkIndex, DELTA_ARTIFACT_TYPE, decodeIndex, INDEX_MEDIA_TYPE, MAX_PACKS, PACK_MEDIA_TYPE, PATCH_MEDIA_TYPE } from './chunk-index.js';

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
/** Annotation on the delta manifest: size in bytes of that slot image. */
export const SLOT_SIZE_ANNOTATION = 'io.edgeplane.slot.size';
/** Annotations on a patch layer: the OS image, and the exact slot image (sha256, size), the patch applies to. */
export const PATCH_FROM_IMAGE_ANNOTATION = 'io.edgeplane.slot.patch.from-image';
export const PATCH_FROM_SLOT_ANNOTATION = 'io.edgeplane.slot.patch.from-slot';
export const PATCH_FROM_SIZE_ANNOTATION = 'io.edgeplane.slot.patch.from-size';
/** Most patch layers (one per earlier release it was made from) one artifact carries. */
export const MAX_PATCHES = 8;

export const DeltaManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA.ociManifest),
  artifactType: z.literal(DELTA_ARTIFACT_TYPE),
  config: Descriptor,
  layers: z
    .array(Descriptor)
    .min(2)
    .max(1 + MAX_PACKS + MAX_PATCHES),
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

/** A binary patch (xdelta3 VCDIFF) from the exact slot image of an earlier OS image to this one's. */
export interface PatchLayer {
  digest: string;
  size: number;
  /** The earlier OS image (manifest digest) and its published slot image (sha256, size). */
  fromImage: string;
  fromSlot: string;
  fromSize: number;
}

export function patchDescriptor(p: PatchLayer): Descriptor {
  return {
    mediaType: PATCH_MEDIA_TYPE,
    digest: p.digest,
    size: p.size,
    annotations: {
      [PATCH_FROM_IMAGE_ANNOTATION]: p.fromImage,
      [PATCH_FROM_SLOT_ANNOTATION]: p.fromSlot,
      [PATCH_FROM_SIZE_ANNOTATION]: String(p.fromSize),
    },
  };
}

/** Layers: [chunk index, packs..., patches...]; pack n is layer n+1 (chunk-index.ts). */
export function deltaManifest(
  subject: Descriptor,
  index: Descriptor,
  packs: Descriptor[],
  slot: { digest: string; size: number },
  patches: PatchLayer[] = [],
): Buffer {
  const manifest: DeltaManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    artifactType: DELTA_ARTIFACT_TYPE,
    config: { ...EMPTY_CONFIG },
    layers: [index, ...packs, ...patches.map(patchDescriptor)],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { [SLOT_DIGEST_ANNOTATION]: slot.digest, [SLOT_SIZE_ANNOTATION]: String(slot.size) },
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
  const packs = m.layers.slice(1).filter((l) => l.mediaType === PACK_MEDIA_TYPE).length;
  const rest = m.layers.slice(1 + packs);
  if (m.layers[0].mediaType !== INDEX_MEDIA_TYPE || packs === 0 || packs > MAX_PACKS || rest.some((l) => l.mediaType !== PATCH_MEDIA_TYPE))
    throw new OciError('BadManifest', 'delta manifest layers are not [chunk index, packs..., patches...]');
  if (rest.length > MAX_PATCHES) throw new OciError('BadManifest', `delta manifest lists ${rest.length} patches (at most ${MAX_PATCHES})`);
  for (const l of rest) patchOf(l);
  const slot = m.annotations?.[SLOT_DIGEST_ANNOTATION];
  if (rest.length && (!slot || !/^sha256:[a-f0-9]{64}$/.test(slot) || !(Number(m.annotations?.[SLOT_SIZE_ANNOTATION]) > 0)))
    throw new OciError('BadManifest', 'a delta manifest with patches must name its slot image (digest and size annotations)');
  return m;
}

function patchOf(l: Descriptor): PatchLayer {
  const a = l.annotations ?? {};
  const fromImage = a[PATCH_FROM_IMAGE_ANNOTATION] ?? '';
  const fromSlot = a[PATCH_FROM_SLOT_ANNOTATION] ?? '';
  const fromSize = Number(a[PATCH_FROM_SIZE_ANNOTATION]);
  const digest = /^sha256:[a-f0-9]{64}$/;
  if (!digest.test(fromImage) || !digest.test(fromSlot) || !Number.isSafeInteger(fromSize) || fromSize <= 0)
    throw new OciError('BadManifest', `patch layer ${l.digest} does not say which slot image it applies to`);
  return { digest: l.digest, size: l.size, fromImage, fromSlot, fromSize };
}

/** The patch layers of a delta manifest (already checked by parseDeltaManifest). */
export function patchesOf(m: DeltaManifest): PatchLayer[] {
  return m.layers.filter((l) => l.mediaType === PATCH_MEDIA_TYPE).map(patchOf);
}

/** The slot image a delta manifest rebuilds: from its annotations. */
export function slotOf(m: DeltaManifest): { digest: string; size: number } | undefined {
  const digest = m.annotations?.[SLOT_DIGEST_ANNOTATION];
  const size = Number(m.annotations?.[SLOT_SIZE_ANNOTATION]);
  return digest && size > 0 ? { digest, size } : undefined;
}

export interface FoundDeltaManifest {
  manifestDigest: string;
  manifest: DeltaManifest;
  /** Blob digests of the packs, by pack number. */
  packs: string[];
  /** Binary patches from earlier releases' exact slot images (possibly none). */
  patches: PatchLayer[];
  /** The slot image this artifact rebuilds (annotations; the index says the same). */
  slot?: { digest: string; size: number };
  /** How it was found. */
  via: 'referrers' | 'tag';
}

export interface FoundDelta extends FoundDeltaManifest {
  index: ChunkIndex;
}

/**
 * Looks up the delta artifact manifest of `imageDigest`: the referrers API first, then the fallback
 * tag. Undefined when there is none. The manifest is checked against its digest when the referrers
 * API named one. The index is not fetched: a device that applies a patch does not need it.
 */
export async function findDeltaManifest(client: RegistryClient, imageDigest: string, signal?: AbortSignal): Promise<FoundDeltaManifest | undefined> {
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
  const packs = manifest.layers.filter((l) => l.mediaType === PACK_MEDIA_TYPE).map((l) => l.digest);
  return { manifestDigest, manifest, packs, patches: patchesOf(manifest), slot: slotOf(manifest), via };
}

/** Fetches the chunk index of a delta artifact, checked against its digest and the manifest. */
export async function loadIndex(client: RegistryClient, found: FoundDeltaManifest, signal?: AbortSignal): Promise<ChunkIndex> {
  const indexDesc = found.manifest.layers[0];
  if (indexDesc.size > 64 * 1024 * 1024) throw new OciError('TooLarge', `chunk index ${indexDesc.digest} is ${indexDesc.size} bytes; refused`);
  const indexBytes = await client.getRange(indexDesc.digest, 0, indexDesc.size, signal);
  if (sha256(indexBytes) !== indexDesc.digest) throw new OciError('DigestMismatch', `chunk index ${indexDesc.digest} does not match its digest`);
  const index = decodeIndex(indexBytes);
  if (index.entries.some((e) => e.pack >= found.packs.length)) throw new OciError('BadManifest', 'chunk index names a pack the delta manifest does not list');
  if (found.slot && (found.slot.digest !== index.digest || found.slot.size !== index.size))
    throw new OciError('BadManifest', 'the chunk index and the delta manifest name different slot images');
  return index;
}

/** findDeltaManifest and loadIndex: the artifact with its verified chunk index. */
export async function findDelta(client: RegistryClient, imageDigest: string, signal?: AbortSignal): Promise<FoundDelta | undefined> {
  const found = await findDeltaManifest(client, imageDigest, signal);
  return found && { ...found, index: await loadIndex(client, found, signal) };
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
