import { join } from 'node:path';
import { type OsSpec, osImageRef, type Slot } from '@edgeplane/protocol';
import { removeTree } from '../../atomic-file.js';
import type { SlotBoot } from '../../device/boot-env.js';
import { applyPatch, assembleSlotImage, type FoundDeltaManifest, fetchPatch, findDeltaManifest, loadIndex, sha256Prefix } from '../../oci/delta/index.js';
import { ImageInfo, OciError, RegistryClient, sourceFor } from '../../oci/index.js';
import { type ManagerContext, ManagerFailure } from '../manager.js';
import type { OsState } from './os-state.js';

/** Progress of a slot fill: `bytes` downloaded of `total` planned, `reused` taken from the device's slots. */
export interface OsProgress {
  bytes: number;
  total: number;
  reused?: number;
}

/** What the delta paths need of the os manager: its work dir, its phase and its progress. */
export interface DeltaHost {
  /** <dataDir>/os; the delta paths work under <dir>/delta. */
  readonly dir: string;
  setPhase(phase: OsState['phase'], message: string, error?: OsState['error']): Promise<void>;
  setProgress(progress: OsProgress | undefined): void;
}

/** ChunkRefetched events per delta update; the staged message counts every refetched chunk. */
const MAX_REFETCH_EVENTS = 3;

/**
 * A delta update (docs/delta-updates.md): a binary patch of the booted slot when one is published
 * for exactly what it holds (stageByPatch); else the slot image is rebuilt from the active and recovery
 * slots plus the chunks they lack, fetched from the delta artifact next to the image; every chunk
 * and the whole image are checked, fetched chunks are kept under <dataDir>/os/delta so an
 * interrupted update resumes. Returns undefined when the slot is staged, else why the whole image
 * is pulled instead (recorded in the phase message, and as an event).
 */
export async function stageByDelta(host: DeltaHost, desired: OsSpec, passive: Slot, boot: SlotBoot, ctx: ManagerContext): Promise<string | undefined> {
  const source = sourceFor(desired.image, { insecure: desired.insecure });
  if (!(source instanceof RegistryClient)) return 'the image is not in a registry';
  let manifest: FoundDeltaManifest | undefined;
  try {
    manifest = await findDeltaManifest(source, desired.digest, ctx.signal);
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    return deltaFallback(ctx, 'Warning', `the delta artifact of ${desired.digest} is unusable: ${(err as Error).message}`);
  }
  if (!manifest) return deltaFallback(ctx, 'Normal', `no delta artifact is published for ${desired.digest}`);
  const patched = await stageByPatch(host, desired, manifest, passive, boot, source, ctx);
  if (patched === undefined) return undefined;
  let index: Awaited<ReturnType<typeof loadIndex>>;
  try {
    index = await loadIndex(source, manifest, ctx.signal);
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    return deltaFallback(ctx, 'Warning', `the chunk index of ${desired.digest} is unusable: ${(err as Error).message}`);
  }
  const found = { ...manifest, index };
  const booted = await boot.bootedSlot();
  const bootedImage = (await boot.readSlot(booted))?.digest;
  const seeds: string[] = [];
  const seedSlots: Slot[] = [];
  for (const slot of new Set<Slot>([booted, 'recovery'])) {
    // The recovery slot holding the booted slot's image has the same files: reading it (the whole
    // partition, chunked and hashed) would find next to nothing more.
    if (slot !== booted && bootedImage && (await boot.readSlot(slot))?.digest === bootedImage) continue;
    const image = await boot.slotImage(slot);
    if (image) {
      seeds.push(image);
      seedSlots.push(slot);
    }
  }
  await host.setPhase(
    'Downloading',
    `rebuilding slot ${passive} from slot${seedSlots.length > 1 ? 's' : ''} ${seedSlots.join(' and ') || '(none)'} and the delta of ${desired.digest}`,
  );
  ctx.log.info({ slot: passive, digest: desired.digest, delta: found.manifestDigest, seeds }, `os: delta update of slot ${passive}`);
  let lastReport = 0;
  let done = { fetched: 0, reused: 0 };
  let refetched = 0;
  const failed = await writeByDelta(host, ctx, desired, passive, boot, join(host.dir, 'delta'), {
    fill: async (path) => {
      done = await assembleSlotImage({
        index,
        seeds,
        target: path,
        chunkStore: join(host.dir, 'delta', index.digest.replace('sha256:', '')),
        fetchRange: (pack, offset, length, signal) => source.getRange(found.packs[pack], offset, length, signal),
        signal: ctx.signal,
        onRefetch: (chunk, reason) => {
          refetched++;
          ctx.log.warn({ chunk, reason }, `os: chunk ${chunk} failed its check; fetching it again`);
          // A few events say it happened; the staged message counts them all.
          if (refetched <= MAX_REFETCH_EVENTS)
            ctx.emitEvent(
              'Warning',
              'ChunkRefetched',
              `chunk sha256:${chunk} of the delta of ${desired.digest} failed its check (${reason}); fetching it again`,
            );
        },
        onProgress: (p) => {
          host.setProgress({ bytes: p.fetched, total: p.toFetch, reused: p.reused });
          if (Date.now() - lastReport > 1000 || (p.fetched >= p.toFetch && p.written === 0)) {
            lastReport = Date.now();
            ctx.reportProgress();
          }
        },
      });
      await host.setPhase('Writing', `checking slot ${passive}, rebuilt from ${done.fetched} bytes downloaded and ${done.reused} reused`);
      await ctx.reportProgress();
    },
  });
  if (failed) return deltaFallback(ctx, 'Warning', `the delta update of slot ${passive} failed: ${failed.message}`);
  const meta = await boot.readSlot(passive);
  const again = refetched ? ` (${refetched} chunk${refetched > 1 ? 's' : ''} fetched again after failing ${refetched > 1 ? 'their' : 'its'} check)` : '';
  await host.setPhase(
    'Staged',
    `image ${meta?.name} ${meta?.version} (${desired.digest}) is staged in slot ${passive} by delta: ${done.fetched} bytes downloaded, ${done.reused} reused${again}`,
  );
  ctx.emitEvent(
    'Normal',
    'ImageStaged',
    `OS image ${osImageRef(desired)} written to slot ${passive} by delta update (${done.fetched} bytes downloaded, ${done.reused} bytes reused from the device's slots)${again}`,
  );
  return undefined;
}

/**
 * The cheapest delta: a binary patch from the exact slot image the booted slot holds (a slot the
 * agent wrote from a published slot image, byte for byte). Its sha256 is checked before the patch
 * is fetched; the patched image's after. Returns undefined when the slot is staged, else why the
 * chunk index is used instead (a PatchFallback event, Normal when no patch fits this slot,
 * Warning when one failed).
 */
async function stageByPatch(
  host: DeltaHost,
  desired: OsSpec,
  found: FoundDeltaManifest,
  passive: Slot,
  boot: SlotBoot,
  source: RegistryClient,
  ctx: ManagerContext,
): Promise<string | undefined> {
  const skip = (type: 'Normal' | 'Warning', reason: string) => {
    ctx.log.info({ reason }, `os: using the chunk index: ${reason}`);
    if (found.patches.length) ctx.emitEvent(type, 'PatchFallback', `using the chunk index: ${reason}`);
    return reason;
  };
  if (!found.patches.length || !found.slot) return skip('Normal', `no patch is published for ${desired.digest}`);
  const slot = found.slot;
  const booted = await boot.bootedSlot();
  const meta = await boot.readSlot(booted);
  const patch = found.patches.find((p) => p.fromImage === meta?.digest);
  if (!patch)
    return skip(
      'Normal',
      `slot ${booted} holds ${meta?.digest ?? 'no recorded image'}; the published patches apply to ${found.patches.map((p) => p.fromImage).join(', ')}`,
    );
  const image = await boot.slotImage(booted);
  if (!image) return skip('Normal', `slot ${booted} has no image to patch`);
  await host.setPhase('Downloading', `checking slot ${booted} against the published slot image of ${patch.fromImage}`);
  let have: string | undefined;
  try {
    have = await sha256Prefix(image, patch.fromSize, ctx.signal);
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    return skip('Warning', `slot ${booted} cannot be read: ${(err as Error).message}`);
  }
  if (have !== patch.fromSlot)
    return skip(
      'Normal',
      `slot ${booted} is not the published slot image of ${patch.fromImage} byte for byte (sha256 ${have ?? 'of a shorter image'}, the patch needs ${patch.fromSlot}): written by a whole-image pull or the installer, or changed since`,
    );
  const dir = join(host.dir, 'delta', `patch-${slot.digest.replace('sha256:', '')}`);
  ctx.log.info({ slot: passive, digest: desired.digest, patch: patch.digest, from: patch.fromImage }, `os: patching slot ${booted} into slot ${passive}`);
  await host.setPhase('Downloading', `patching slot ${booted} (${patch.fromImage}) into slot ${passive} with the delta of ${desired.digest}`);
  let lastReport = 0;
  let fetched = 0;
  let blob = '';
  const failed = await writeByDelta(host, ctx, desired, passive, boot, dir, {
    download: async () => {
      blob = (
        await fetchPatch({
          patch,
          dir,
          fetchRange: (offset, length, signal) => source.getRange(patch.digest, offset, length, signal),
          signal: ctx.signal,
          onProgress: (n, at) => {
            fetched = n;
            host.setProgress({ bytes: at, total: patch.size, reused: 0 });
            if (Date.now() - lastReport > 1000 || at === patch.size) {
              lastReport = Date.now();
              ctx.reportProgress();
            }
          },
        })
      ).path;
      host.setProgress({ bytes: patch.size, total: patch.size, reused: patch.fromSize });
    },
    fill: async (path) => {
      await applyPatch({
        patchBlob: blob,
        source: image,
        sourceSize: patch.fromSize,
        target: path,
        targetSize: slot.size,
        targetDigest: slot.digest,
        workDir: dir,
        signal: ctx.signal,
      });
      await host.setPhase('Writing', `checking slot ${passive}, patched from slot ${booted} with ${patch.size} bytes`);
      await ctx.reportProgress();
    },
  });
  if (failed) return skip('Warning', `the patch from ${patch.fromImage} failed: ${failed.message}`);
  const written = await boot.readSlot(passive);
  await host.setPhase(
    'Staged',
    `image ${written?.name} ${written?.version} (${desired.digest}) is staged in slot ${passive} by patch from slot ${booted}: ${fetched} bytes downloaded, ${patch.fromSize} reused`,
  );
  ctx.emitEvent(
    'Normal',
    'ImageStaged',
    `OS image ${osImageRef(desired)} written to slot ${passive} by delta update (patch from ${patch.fromImage}: ${fetched} bytes downloaded, the rest from slot ${booted})`,
  );
  return undefined;
}

/**
 * Both delta paths' slot write: `download` (if any), then the passive slot written through the slot
 * boot's writeSlotImage from `fill`, with the slot record of `desired`. Returns undefined when the
 * slot is written (the delta work dir removed), or the error to fall back with (`workDir`
 * removed). When the run is aborted (a restart, a power cut) or the download was cut off (a network
 * error, deltaInterrupted), what was downloaded stays under `workDir` and the error is thrown, so
 * the next run resumes the delta.
 */
async function writeByDelta(
  host: DeltaHost,
  ctx: ManagerContext,
  desired: OsSpec,
  passive: Slot,
  boot: SlotBoot,
  workDir: string,
  steps: { download?: () => Promise<void>; fill: (path: string) => Promise<void> },
): Promise<Error | undefined> {
  try {
    await steps.download?.();
    await boot.writeSlotImage(passive, steps.fill, (imageJson) => slotRecord(desired, imageJson), ctx.signal);
  } catch (err) {
    host.setProgress(undefined);
    if (ctx.signal.aborted) throw err;
    if (cutOff(err)) throw await deltaInterrupted(host, ctx, passive, err as Error);
    await removeTree(workDir);
    return err as Error;
  }
  await removeTree(join(host.dir, 'delta'));
  host.setProgress(undefined);
  return undefined;
}

/**
 * The delta download was cut off (the connection dropped, the registry is unreachable or busy):
 * what was fetched stays under <dataDir>/os/delta and the run fails retryable, so the next
 * attempt resumes the delta instead of pulling the whole image over the same flaky link.
 */
async function deltaInterrupted(host: DeltaHost, ctx: ManagerContext, passive: Slot, err: Error): Promise<ManagerFailure> {
  const message = `the delta download for slot ${passive} was interrupted; it resumes on the next attempt: ${err.message}`;
  ctx.log.warn({ err: err.message }, `os: ${message}`);
  const failure = new ManagerFailure({ phase: 'prepare', component: 'os', retryable: true, message });
  await host.setPhase('Failed', message, failure.detail);
  return failure;
}

function deltaFallback(ctx: ManagerContext, type: 'Normal' | 'Warning', reason: string): string {
  ctx.log.info({ reason }, `os: pulling the whole image: ${reason}`);
  ctx.emitEvent(type, 'DeltaFallback', `pulling the whole image: ${reason}`);
  return reason;
}

/** A network error that trying again can cure (OciError 'Unavailable', retryable), not a verification failure. */
function cutOff(err: unknown): boolean {
  return err instanceof OciError && err.code === 'Unavailable' && err.retryable;
}

/** The slot record of a slot image written by delta: refused unless the image carries a valid image.json. */
function slotRecord(desired: OsSpec, imageJson: string | undefined) {
  let info: ImageInfo | undefined;
  try {
    info = ImageInfo.parse(JSON.parse(imageJson ?? ''));
  } catch {
    throw new OciError('BadManifest', `image ${desired.digest} is not an Edgeplane OS image: no valid /usr/lib/edgeplane/image.json in its slot image`);
  }
  return { digest: desired.digest, image: desired.image, ...info, writtenAt: new Date().toISOString() };
}
