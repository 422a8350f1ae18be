import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BlobStore } from '../blob-store.js';
import { extractImage } from '../extract.js';
import { slotKernelSigned } from '../kernel-signature.js';
import { pullImage } from '../pull.js';
import { parseImageReference } from '../reference.js';
import { RegistryClient } from '../registry-client.js';
import { MEDIA, OciError } from '../types.js';
import { deltaManifest, deltaTag, EMPTY_CONFIG_BYTES, type FoundDelta, findDelta, type PatchLayer, referrersTag, sha256 } from './artifact.js';
import { assembleSlotImage } from './assemble.js';
import { buildChunkIndex, DELTA_ARTIFACT_TYPE, encodeIndex, INDEX_MEDIA_TYPE, type IndexEntry, MAX_PACKS, PACK_MEDIA_TYPE } from './chunk-index.js';
import { haveXdelta3, makePatch } from './patch.js';
import { buildSlotImage, reproducibleMkfsEnv } from './slot-image.js';

export interface PublishDeltaOptions {
  /** The image to publish a delta artifact for: registry/repository:tag or @digest. */
  to: string;
  /** An earlier image in the same repository: chunks its delta artifact already holds are not uploaded again. */
  from?: string;
  /** Plain HTTP (default: only for a registry on the loopback interface). */
  insecure?: boolean;
  /**
   * With `from`: also a binary patch (xdelta3) from the earlier image's published slot image to this
   * one's, for devices that run exactly that image (default true; needs xdelta3 on this machine).
   */
  patch?: boolean;
  /** Size of the slot image; default the previous image's, else twice the tree rounded up to 64 MiB (at least 64 MiB). */
  slotSizeBytes?: number;
  /** Scratch space for the tree and the slot image (default the system temp dir). */
  workDir?: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface PublishedDelta {
  image: string;
  imageDigest: string;
  manifestDigest: string;
  /** referrers: the registry serves the referrers API; tag: found through the sha256-<hex>.delta tag. */
  via: 'referrers' | 'tag';
  slotBytes: number;
  slotDigest: string;
  chunks: number;
  /** Bytes of new chunks uploaded (the new pack), and bytes of chunks already in the registry that the index points to. */
  uploadedBytes: number;
  reusedBytes: number;
  indexBytes: number;
  /** The patch from `from`, when one was made. */
  patch?: PatchLayer;
}

const MiB = 1024 * 1024;

/**
 * `edgeplane image delta`: builds the slot image of an OS image already in a registry (pulled,
 * extracted, written with the reproducible mkfs.ext4 arguments the agent's slot writer uses for
 * deltas), chunks it, and pushes the chunk index and a pack of the chunks the registry does not yet
 * hold next to the image, as a manifest whose subject is the image (artifact.ts).
 *
 * The push side of the distribution API is written here with fetch (HEAD blob, POST+PUT monolithic
 * upload, PUT manifest: spec.md "Pushing blobs", "Pushing Manifests with Subject"): skopeo copies
 * images, not a manifest with a subject and custom layers; no registry credentials are supported yet.
 */
export async function publishDelta(options: PublishDeltaOptions): Promise<PublishedDelta> {
  const log = options.log ?? (() => {});
  const target = registryOf(options.to);
  const client = new RegistryClient({ registry: target.registry, repository: target.repository, insecure: options.insecure ?? target.insecure });
  const push = new Pusher(target.registry, target.repository, options.insecure ?? target.insecure);
  const subject = await client.getManifest(target.reference, options.signal);
  const imageDigest = sha256(subject.bytes);

  // Chunks already published with the earlier image: pointed to, not uploaded again.
  const known = new Map<string, IndexEntry>();
  const packs: { digest: string; size: number }[] = [];
  let slotSize = options.slotSizeBytes;
  let previous: (FoundDelta & { image: string }) | undefined;
  if (options.from) {
    const prev = registryOf(options.from);
    if (prev.registry !== target.registry || prev.repository !== target.repository)
      throw new OciError('BadReference', `--from ${options.from} must be in the same repository as --to ${options.to}`);
    const prevDigest = sha256((await client.getManifest(prev.reference, options.signal)).bytes);
    const found = await findDelta(client, prevDigest, options.signal);
    if (found) previous = { ...found, image: prevDigest };
    if (!found) log(`${options.from} has no delta artifact yet: every chunk is uploaded`);
    else if (found.packs.length < MAX_PACKS) {
      slotSize ??= found.index.size;
      found.manifest.layers.slice(1).forEach((l) => {
        packs.push({ digest: l.digest, size: l.size });
      });
      for (const e of found.index.entries) known.set(e.hash.toString('hex'), e);
    } else log(`${options.from}'s delta artifact spans ${found.packs.length} packs: starting a fresh one`);
  }

  const work = await mkdtemp(join(options.workDir ?? tmpdir(), 'edgeplane-delta-'));
  try {
    const store = new BlobStore(join(work, 'blobs'));
    log(`pulling ${options.to} (${imageDigest})`);
    const pulled = await pullImage({ source: client, digest: imageDigest, store, signal: options.signal });
    const tree = join(work, 'rootfs');
    await extractImage(store, pulled.manifest, tree, options.signal);
    await store.clear();
    const image = join(work, 'slot.img');
    // The slot's record goes into the image, so a device keeps the slot byte for byte (slot-image.ts).
    const info = JSON.parse(await readFile(join(tree, 'usr/lib/edgeplane/image.json'), 'utf8').catch(() => '{}')) as { name?: unknown; version?: unknown };
    // Whether its kernel is signed, as the agent records it for a slot it writes from the tree (the
    // os manager says why a Secure Boot machine refused a slot from it).
    const kernelSigned = await slotKernelSigned(tree);
    const record = {
      digest: imageDigest,
      image: options.to,
      ...(typeof info.name === 'string' ? { name: info.name } : {}),
      ...(typeof info.version === 'string' ? { version: info.version } : {}),
      ...(kernelSigned === undefined ? {} : { kernelSigned }),
      writtenAt: new Date(Number(reproducibleMkfsEnv().E2FSPROGS_FAKE_TIME) * 1000).toISOString(),
    };
    const bytes = await buildSlotImage(tree, image, slotSize, options.signal, record);
    await rm(tree, { recursive: true, force: true });
    log(`slot image: ${Math.round(bytes / MiB)} MiB; chunking`);

    const packFile = join(work, 'pack');
    let uploaded = 0;
    const index = await buildChunkIndex(
      image,
      async (b) => {
        uploaded += b.length;
        await appendFile(packFile, b);
      },
      { known, pack: packs.length, signal: options.signal },
    );
    let reused = 0;
    const usedPacks = new Set(index.entries.map((e) => e.pack));
    for (const e of index.entries) if (e.pack < packs.length) reused += e.length;
    // Keep only the packs this index points into; renumber to their new positions.
    const layers: { digest: string; size: number }[] = [];
    const renumber = new Map<number, number>();
    for (let p = 0; p <= packs.length; p++) {
      if (!usedPacks.has(p)) continue;
      renumber.set(p, layers.length);
      if (p < packs.length) layers.push(packs[p]);
      else {
        const size = (await stat(packFile)).size;
        const digest = await push.blobFile(packFile, size, options.signal);
        layers.push({ digest, size });
      }
    }
    // Entries may share objects (a repeated chunk): renumber into new ones.
    index.entries = index.entries.map((e) => ({ ...e, pack: renumber.get(e.pack) ?? 0 }));
    for (const l of layers) if (!(await push.hasBlob(l.digest, options.signal))) throw new OciError('NotFound', `pack ${l.digest} is not in the registry`);

    // The patch from the earlier image: against its exact published slot image (what devices that
    // run it hold), rebuilt from its own chunk index, seeded from this image (most chunks are alike).
    let patch: PatchLayer | undefined;
    const xdelta3 = previous && options.patch !== false && (await haveXdelta3());
    if (previous && options.patch !== false && !xdelta3)
      log('xdelta3 is not installed (Debian package xdelta3): no patch is made, devices use the chunk index');
    if (previous && xdelta3) {
      const fromImage = join(work, 'from.img');
      await assembleSlotImage({
        index: previous.index,
        seeds: [image],
        target: fromImage,
        chunkStore: join(work, 'from-chunks'),
        fetchRange: (pack, offset, length, signal) => client.getRange(previous.packs[pack], offset, length, signal),
        signal: options.signal,
      });
      const patchFile = join(work, 'patch');
      const size = await makePatch(fromImage, image, patchFile, options.signal);
      await rm(fromImage, { force: true });
      patch = {
        digest: await push.blobFile(patchFile, size, options.signal),
        size,
        fromImage: previous.image,
        fromSlot: previous.index.digest,
        fromSize: previous.index.size,
      };
      log(`patch from ${options.from}: ${Math.round(size / 1024)} KiB`);
    }

    const indexBytes = encodeIndex(index);
    const indexDesc = { mediaType: INDEX_MEDIA_TYPE, digest: await push.blob(indexBytes, options.signal), size: indexBytes.length };
    await push.blob(EMPTY_CONFIG_BYTES, options.signal);
    const manifest = deltaManifest(
      { mediaType: subject.mediaType || MEDIA.ociManifest, digest: imageDigest, size: subject.bytes.length },
      indexDesc,
      layers.map((l) => ({ mediaType: PACK_MEDIA_TYPE, ...l })),
      { digest: index.digest, size: index.size },
      patch ? [patch] : [],
    );
    const manifestDigest = sha256(manifest);
    const { subjectAccepted } = await push.manifest(manifestDigest, manifest, options.signal);
    // Always the .delta tag too: that is what the agent reads when the referrers API is absent,
    // and a tag keeps the artifact from registry garbage collection of untagged manifests.
    await push.manifest(deltaTag(imageDigest), manifest, options.signal);
    if (!subjectAccepted)
      await push.addToReferrersTag(imageDigest, { mediaType: MEDIA.ociManifest, digest: manifestDigest, size: manifest.length }, options.signal);
    log(`pushed delta ${manifestDigest}: ${index.entries.length} chunks, ${Math.round(uploaded / 1024)} KiB new`);
    return {
      image: options.to,
      imageDigest,
      manifestDigest,
      via: subjectAccepted ? 'referrers' : 'tag',
      slotBytes: index.size,
      slotDigest: index.digest,
      chunks: index.entries.length,
      uploadedBytes: uploaded,
      reusedBytes: reused,
      indexBytes: indexBytes.length,
      ...(patch ? { patch } : {}),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function registryOf(ref: string): { registry: string; repository: string; reference: string; insecure: boolean } {
  const src = parseImageReference(ref);
  if (src.kind !== 'registry') throw new OciError('BadReference', `${ref} is not a registry image reference`);
  const host = src.registry.startsWith('[') ? src.registry.slice(1, src.registry.indexOf(']')) : src.registry.split(':')[0];
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  const digest = /@(sha256:[a-f0-9]{64})$/.exec(ref)?.[1];
  return { registry: src.registry, repository: src.repository, reference: digest ?? src.tag ?? 'latest', insecure: loopback };
}

/** The push half of the distribution API, anonymous (see publishDelta). */
class Pusher {
  private readonly base: string;
  constructor(
    private readonly registry: string,
    repository: string,
    insecure: boolean,
  ) {
    this.base = `${insecure ? 'http' : 'https'}://${registry}/v2/${repository}`;
  }

  async hasBlob(digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.fetch(`${this.base}/blobs/${digest}`, { method: 'HEAD', signal });
    return res.ok;
  }

  /** Uploads a blob unless the registry holds it already; returns its digest. */
  async blob(bytes: Buffer, signal?: AbortSignal): Promise<string> {
    const digest = sha256(bytes);
    if (!(await this.hasBlob(digest, signal))) await this.upload(digest, bytes, bytes.length, signal);
    return digest;
  }

  async blobFile(path: string, size: number, signal?: AbortSignal): Promise<string> {
    const h = createHash('sha256');
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
    const digest = `sha256:${h.digest('hex')}`;
    if (!(await this.hasBlob(digest, signal))) await this.upload(digest, Readable.toWeb(createReadStream(path)) as ReadableStream, size, signal);
    return digest;
  }

  private async upload(digest: string, body: Buffer | ReadableStream, size: number, signal?: AbortSignal): Promise<void> {
    const start = await this.fetch(`${this.base}/blobs/uploads/`, { method: 'POST', signal });
    const location = start.headers.get('location');
    if (start.status !== 202 || !location) throw this.refused('starting a blob upload', start);
    const url = new URL(location, this.base);
    url.searchParams.set('digest', digest);
    const res = await this.fetch(url.toString(), {
      method: 'PUT',
      body: Buffer.isBuffer(body) ? new Uint8Array(body) : body,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      signal,
      duplex: 'half',
    } as RequestInit);
    if (res.status !== 201) throw this.refused(`uploading blob ${digest}`, res);
  }

  /** PUT a manifest; `subjectAccepted` when the registry answers with OCI-Subject (it serves the referrers API). */
  async manifest(reference: string, bytes: Buffer, signal?: AbortSignal, mediaType: string = MEDIA.ociManifest): Promise<{ subjectAccepted: boolean }> {
    const res = await this.fetch(`${this.base}/manifests/${reference}`, {
      method: 'PUT',
      body: new Uint8Array(bytes),
      headers: { 'Content-Type': mediaType },
      signal,
    });
    if (res.status !== 201) throw this.refused(`pushing manifest ${reference}`, res);
    return { subjectAccepted: res.headers.has('oci-subject') };
  }

  /**
   * The referrers tag schema (distribution spec v1.1.0, "Pushing Manifests with Subject" / "Referrers
   * Tag Schema"): without a referrers API the client keeps an image index tagged `sha256-<hex>` listing
   * the subject's referrers; ours is added (replacing an earlier Edgeplane delta), others are kept.
   */
  async addToReferrersTag(subjectDigest: string, desc: { mediaType: string; digest: string; size: number }, signal?: AbortSignal): Promise<void> {
    const tag = referrersTag(subjectDigest);
    const res = await this.fetch(`${this.base}/manifests/${tag}`, { headers: { Accept: MEDIA.ociIndex }, signal });
    let manifests: { artifactType?: string }[] = [];
    if (res.ok) {
      const json = (await res.json().catch(() => ({}))) as { manifests?: { artifactType?: string }[] };
      manifests = (json.manifests ?? []).filter((m) => m.artifactType !== DELTA_ARTIFACT_TYPE);
    } else await res.body?.cancel();
    const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [...manifests, { ...desc, artifactType: DELTA_ARTIFACT_TYPE }] };
    await this.manifest(tag, Buffer.from(JSON.stringify(index)), signal, MEDIA.ociIndex);
  }

  private async fetch(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, { ...init, headers: { 'User-Agent': 'edgeplane-cli', ...(init.headers as Record<string, string>) } });
    } catch (err) {
      init.signal?.throwIfAborted();
      throw new OciError('Unavailable', `cannot reach registry ${this.registry}: ${(err as Error).message}`, true);
    }
  }

  private refused(what: string, res: Response): OciError {
    void res.body?.cancel();
    if (res.status === 401 || res.status === 403)
      return new OciError(
        'Unauthorized',
        `${what}: the registry ${this.registry} wants credentials (HTTP ${res.status}); publishing deltas supports anonymous push only`,
      );
    return new OciError('Unavailable', `${what}: the registry ${this.registry} answered HTTP ${res.status}`, res.status >= 500);
  }
}
