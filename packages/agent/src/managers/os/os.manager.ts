import { join } from 'node:path';
import { type HealthCheck, type HostSpec, type OsSpec, type OsStatus, osAttempt, osImageRef, type Slot } from '@edgeplane/protocol';
import { removeTree } from '../../atomic-file.js';
import { sleep } from '../../backoff.js';
import { BOOT_VARS, type SlotBoot, type SlotMeta } from '../../device/boot-env.js';
import { type Device, slotBoot } from '../../device/device.js';
import { secureBootEnforced } from '../../device/secure-boot.js';
import { BlobStore, extractImage, OciError, pullImage, readImageInfo, slotKernelSigned, sourceFor } from '../../oci/index.js';
import { type Manager, type ManagerContext, ManagerFailure } from '../manager.js';
import { type DeltaHost, type OsProgress, stageByDelta } from './os-delta.js';
import { type FailedImage, loadOsState, MAX_FAILED_IMAGES, type OsState, saveOsState } from './os-state.js';
import { IMAGE_HEALTH_CHECKS_PATH, readImageHealthChecks, runProfileHealthChecks } from './profile-health.js';

/** A post-boot health check: resolves to a reason when unhealthy, undefined when healthy. */
export type OsHealthCheck = (info: { slot: Slot; digest?: string; desired?: OsSpec }) => Promise<string | undefined>;

export interface OsManagerOptions {
  /** Agent data dir; the manager keeps state.json, the download cache and staging under <dataDir>/os/. */
  dataDir: string;
  /** Checks run after a trial boot, besides "the booted slot holds the desired digest". */
  healthChecks?: OsHealthCheck[];
  maxBlobBytes?: number;
  /** How long apply waits for the process to end after requesting a reboot. */
  rebootTimeoutMs?: number;
  /** Pause between attempts of a profile health check (OsSpec.healthChecks); default 3 s. */
  healthCheckRetryDelayMs?: number;
}

/**
 * The `os` manager: A/B image updates (see docs/architecture.md "OS images and A/B slots").
 * prepare: pull the pinned image (registry or OCI layout), verify it, write it to the passive slot.
 * apply:   point the boot environment at the passive slot for one trial boot and reboot; after that
 *          boot, check health and commit, or reboot back to the previous slot and report why.
 */
export class OsManager implements Manager<'os'> {
  readonly name = 'os' as const;
  private state?: OsState;
  private progress?: OsProgress;

  constructor(
    private readonly device: Device,
    private readonly options: OsManagerOptions,
  ) {}

  /** The A/B boot environment; undefined on a device that keeps its own OS ('unmanaged'). */
  private get boot(): SlotBoot | undefined {
    return slotBoot(this.device);
  }
  private get dir(): string {
    return join(this.options.dataDir, 'os');
  }
  /** The delta paths (os-delta.ts) work under this manager's dir and report through its phase and progress. */
  private get deltaHost(): DeltaHost {
    return {
      dir: this.dir,
      setPhase: (phase, message, error) => this.setPhase(phase, message, error),
      setProgress: (progress) => {
        this.progress = progress;
      },
    };
  }

  async converged(desired: OsSpec | undefined): Promise<boolean> {
    const boot = this.boot;
    if (!boot) return desired === undefined;
    const env = await boot.grubenv.bootState();
    if (env.trySlot) return false; // a trial boot waits for its verdict
    const state = await this.loadState();
    // A phase left over from another spec (a failed or staged image) is cleaned up by apply.
    if (!desired) return !STALE_WITHOUT_SPEC.has(state.phase);
    // Not converged: apply reports the fallback again, so later managers do not act on this spec.
    if (blockedBy(desired, state)) return false;
    const booted = await boot.bootedSlot();
    const meta = await boot.readSlot(booted);
    if (desired.activate === false && meta?.digest !== desired.digest)
      return (await boot.readSlot(passiveOf(booted)))?.digest === desired.digest && state.phase === 'Staged';
    return meta?.digest === desired.digest && env.activeSlot === booted && state.phase === 'Committed';
  }

  async prepare(desired: OsSpec | undefined, ctx: ManagerContext): Promise<void> {
    if (!desired) return;
    const boot = this.requireBoot();
    const env = await boot.grubenv.bootState();
    if (env.trySlot) return; // verified in apply
    const booted = await boot.bootedSlot();
    if ((await boot.readSlot(booted))?.digest === desired.digest) return;
    const state = await this.loadState();
    if (blockedBy(desired, state)) return; // fell back from it under this attempt already; reported in status
    const passive = passiveOf(booted);
    if ((await boot.readSlot(passive))?.digest === desired.digest) {
      await this.setPhase('Staged', `image ${desired.digest} is staged in slot ${passive}`);
      return;
    }
    await this.stage(desired, passive, boot, ctx);
  }

  private async stage(desired: OsSpec, passive: Slot, boot: SlotBoot, ctx: ManagerContext): Promise<void> {
    const noDelta = await stageByDelta(this.deltaHost, desired, passive, boot, ctx);
    if (!noDelta) return;
    await this.setPhase('Downloading', `pulling ${osImageRef(desired)} for slot ${passive} (whole image: ${noDelta})`);
    ctx.log.info({ slot: passive, digest: desired.digest }, `os: pulling ${desired.digest} for slot ${passive}`);
    const store = new BlobStore(join(this.dir, 'cache'));
    let lastReport = 0;
    try {
      const pulled = await pullImage({
        source: sourceFor(desired.image, { insecure: desired.insecure }),
        digest: desired.digest,
        store,
        maxBlobBytes: this.options.maxBlobBytes,
        signal: ctx.signal,
        onProgress: (p) => {
          this.progress = p;
          if (Date.now() - lastReport > 1000 || p.bytes === p.total) {
            lastReport = Date.now();
            ctx.reportProgress();
          }
        },
      });
      const rootfs = join(this.dir, 'staging', 'rootfs');
      await extractImage(store, pulled.manifest, rootfs, ctx.signal);
      const info = await readImageInfo(rootfs);
      if (!info)
        throw new ManagerFailure({
          phase: 'prepare',
          component: 'os',
          retryable: false,
          message: `image ${desired.digest} is not an Edgeplane OS image: no valid /usr/lib/edgeplane/image.json`,
        });
      // A power cut from here on leaves the passive slot empty (see SlotBoot.writeSlot): the next start stages again.
      await this.setPhase('Writing', `writing ${info.name} ${info.version} (${desired.digest}) into slot ${passive}`);
      ctx.log.info({ slot: passive, digest: desired.digest }, `os: writing ${info.name} ${info.version} into slot ${passive}`);
      await ctx.reportProgress();
      const kernelSigned = await slotKernelSigned(rootfs);
      const meta = {
        digest: desired.digest,
        image: desired.image,
        ...info,
        ...(kernelSigned === undefined ? {} : { kernelSigned }),
        writtenAt: new Date().toISOString(),
      };
      await boot.writeSlot(passive, rootfs, meta, ctx.signal);
      await store.clear();
      await removeTree(join(this.dir, 'staging'));
      this.progress = undefined;
      await this.setPhase('Staged', `image ${info.name} ${info.version} (${desired.digest}) is staged in slot ${passive}`);
      ctx.emitEvent('Normal', 'ImageStaged', `OS image ${osImageRef(desired)} written to slot ${passive}`);
    } catch (err) {
      this.progress = undefined;
      if (ctx.signal.aborted) throw err;
      const failure = toFailure(err);
      if (err instanceof OciError && err.code === 'DigestMismatch') {
        // Nothing of it is kept: the blob store already deleted the content; drop the rest of the pull.
        await store.clear();
        ctx.emitEvent('Warning', 'ImageRejected', failure.message);
      }
      await this.setPhase('Failed', failure.message, failure.detail);
      throw failure;
    }
  }

  async apply(desired: OsSpec | undefined, ctx: ManagerContext, spec: HostSpec): Promise<void> {
    void spec;
    const boot = this.boot;
    if (!boot) return;
    const env = await boot.grubenv.bootState();
    const booted = await boot.bootedSlot();
    if (env.trySlot) {
      await this.verdict(env.trySlot, booted, env.activeSlot, desired, boot, ctx);
      // The spec may have moved on while the trial ran: stage the newer image on the retry.
      const now = await boot.readSlot(await boot.bootedSlot());
      this.throwIfFellBack(desired, await this.loadState());
      if (desired && now?.digest !== desired.digest && !blockedBy(desired, await this.loadState()))
        throw new ManagerFailure({
          phase: 'apply',
          component: 'os',
          retryable: true,
          message: `a newer image (${desired.digest}) is desired; staging it next`,
        });
      return;
    }
    if (!desired) {
      if (STALE_WITHOUT_SPEC.has((await this.loadState()).phase)) await this.setPhase('Idle', 'no OS image is desired');
      return;
    }
    const bootedMeta = await boot.readSlot(booted);
    if (bootedMeta?.digest === desired.digest) {
      if (env.activeSlot !== booted) await boot.grubenv.set({ [BOOT_VARS.active]: booted });
      // Running the desired image: it is no failed image here (any other failed image is kept and
      // tried again only under another attempt, see osAttempt).
      const state = await this.loadState();
      this.state = { ...state, failedImages: withoutDigest(state.failedImages, desired.digest) };
      await this.setPhase('Committed', `running ${desired.digest} from slot ${booted}`);
      return;
    }
    this.throwIfFellBack(desired, await this.loadState());
    // Stage only: the rolling upgrade switches this node's slot later, inside its maintenance window.
    if (desired.activate === false) return;
    const passive = passiveOf(booted);
    if ((await boot.readSlot(passive))?.digest !== desired.digest)
      throw new ManagerFailure({ phase: 'apply', component: 'os', retryable: true, message: `image ${desired.digest} is not staged in slot ${passive}` });
    // active_slot is written explicitly too, so a fresh device's boot loader has it to fall back to.
    await boot.grubenv.set({ [BOOT_VARS.active]: env.activeSlot, [BOOT_VARS.next]: passive, [BOOT_VARS.trial]: passive });
    // A new attempt (another digest, other health checks, or an operator's retry): the old record goes.
    const before = await this.loadState();
    const retried = before.failedImages.find((f) => f.digest === desired.digest);
    this.state = { ...before, failedImages: withoutDigest(before.failedImages, desired.digest) };
    if (retried) ctx.emitEvent('Normal', 'ImageRetried', `trying ${desired.digest} again (it fell back at ${retried.at}: ${retried.reason})`);
    await this.setPhase('Rebooting', `rebooting into slot ${passive} for a trial boot of ${desired.digest}`);
    ctx.emitEvent('Normal', 'Rebooting', `rebooting into slot ${passive} to try ${osImageRef(desired)}`);
    await this.rebootAndWait(ctx);
  }

  /** After a trial boot: commit when healthy, else go back; or record that the boot loader already went back. */
  private async verdict(trial: Slot, booted: Slot, active: Slot, desired: OsSpec | undefined, boot: SlotBoot, ctx: ManagerContext): Promise<void> {
    const state = await this.loadState();
    if (booted !== trial) {
      const meta = await boot.readSlot(trial);
      // Our own verdict (recorded before rebooting back), else the trial never reached the agent.
      const last = state.failedImages[0];
      const ours = last?.slot === trial && last.digest === meta?.digest && state.phase === 'Rebooting' ? last : undefined;
      const reason = ours ? ours.reason : await this.whyNotBooted(trial, booted, meta);
      await boot.grubenv.set({ [BOOT_VARS.trial]: '' });
      const message = `fell back to slot ${booted}: ${reason}`;
      const digest = meta?.digest ?? desired?.digest ?? '';
      this.state = { ...state, failedImages: withFailure(state.failedImages, ours ?? failure(digest, desired, trial, reason)) };
      await this.setPhase('FellBack', message, { phase: 'health', component: 'os', retryable: false, message });
      ctx.emitEvent('Warning', 'FellBack', message);
      return;
    }
    await this.setPhase('Verifying', `checking the trial boot of slot ${trial}`);
    const meta = await boot.readSlot(trial);
    const reason = await this.health(trial, meta?.digest, desired, ctx.signal);
    if (!reason) {
      await boot.grubenv.set({ [BOOT_VARS.active]: trial, [BOOT_VARS.trial]: '' });
      this.state = { ...state, failedImages: withoutDigest(state.failedImages, meta?.digest) };
      await this.setPhase('Committed', `committed slot ${trial} (${meta?.digest}); previous slot ${active}`);
      ctx.emitEvent('Normal', 'ImageCommitted', `slot ${trial} with ${meta?.digest} is now the active slot`);
      return;
    }
    // next_slot is already cleared by the boot loader, so this reboot starts the active (previous) slot.
    this.state = { ...state, failedImages: withFailure(state.failedImages, failure(meta?.digest ?? desired?.digest ?? '', desired, trial, reason)) };
    await this.setPhase('Rebooting', `trial boot of slot ${trial} is unhealthy (${reason}); rebooting into slot ${active}`);
    ctx.emitEvent('Warning', 'FallingBack', `slot ${trial} is unhealthy: ${reason}; rebooting into slot ${active}`);
    await this.rebootAndWait(ctx);
  }

  /**
   * Why the trial slot never reached the agent, as far as the device can tell. Under Secure Boot a
   * kernel without a signature is refused by the firmware chain (shim, then GRUB's shim_lock
   * verifier) before it starts; any other cause (a kernel that panics, a hang the watchdog resets)
   * looks the same from here.
   */
  private async whyNotBooted(trial: Slot, booted: Slot, meta: SlotMeta | undefined): Promise<string> {
    const plain = `slot ${trial} did not boot; the boot loader started slot ${booted}`;
    if (meta?.kernelSigned !== false || !(await secureBootEnforced(this.device.files))) return plain;
    return `${plain}: Secure Boot is enforced and the kernel of slot ${trial} carries no signature, so the firmware chain refused it`;
  }

  /**
   * The node fell back from the desired image: stop this run (not retryable), so the kubernetes
   * and addons managers do not apply a spec meant for the image that did not come up. The node keeps
   * running its previous image and configuration until the server sends another spec.
   */
  private throwIfFellBack(desired: OsSpec | undefined, state: OsState): void {
    const failed = blockedBy(desired, state);
    if (!desired || !failed) return;
    const message = `fell back from ${desired.digest}: ${failed.reason}; edgeplane retry host tries it again`;
    throw new ManagerFailure({ phase: 'health', component: 'os', retryable: false, message });
  }

  private async health(slot: Slot, digest: string | undefined, desired: OsSpec | undefined, signal: AbortSignal): Promise<string | undefined> {
    if (desired && digest !== desired.digest) return `slot ${slot} holds ${digest ?? 'no image'}, not the desired ${desired.digest}`;
    for (const check of this.options.healthChecks ?? []) {
      const reason = await check({ slot, digest, desired }).catch((err: Error) => `health check failed: ${err.message}`);
      if (reason) return reason;
    }
    // The profile's own checks (http endpoints, commands), after the node is known to be up, then
    // the checks the booted image carries itself (edgeplane image build --health-check).
    let imageChecks: HealthCheck[];
    try {
      imageChecks = await readImageHealthChecks(this.device);
    } catch (err) {
      // A broken check file fails the trial: an image must not pass by accident.
      return `the image's /${IMAGE_HEALTH_CHECKS_PATH} is not valid: ${(err as Error).message}`;
    }
    const checks = [...(desired?.healthChecks ?? []), ...imageChecks];
    if (checks.length) {
      const reason = await runProfileHealthChecks(this.device, checks, { retryDelayMs: this.options.healthCheckRetryDelayMs, signal });
      if (reason) return reason;
    }
    return slotBoot(this.device)?.slotHealth(slot);
  }

  private async rebootAndWait(ctx: ManagerContext): Promise<void> {
    await ctx.reportProgress(); // the server should see "Rebooting" before the agent goes away
    await this.device.reboot();
    // The process ends (or, simulated, the agent restarts and aborts this run) during this wait.
    await sleep(this.options.rebootTimeoutMs ?? 600_000, ctx.signal);
    ctx.signal.throwIfAborted();
    throw new ManagerFailure({ phase: 'apply', component: 'os', retryable: true, message: 'the reboot was requested but did not happen' });
  }

  async status(): Promise<OsStatus> {
    const state = await this.loadState();
    const boot = this.boot;
    if (!boot) return { phase: state.phase, bootedSlot: 'A', activeSlot: 'A', slots: {}, message: 'this device has no A/B slots' };
    const [env, bootedSlot] = await Promise.all([boot.grubenv.bootState(), boot.bootedSlot()]);
    const slots: OsStatus['slots'] = {};
    for (const slot of ['A', 'B'] as const) {
      const meta = await boot.readSlot(slot);
      slots[slot] = meta ? { digest: meta.digest, image: meta.image } : {};
    }
    // Booted from recovery (neither A nor B could be loaded): that slot's record names the image.
    const digest = bootedSlot === 'recovery' ? (await boot.readSlot('recovery'))?.digest : slots[bootedSlot]?.digest;
    return {
      phase: state.phase,
      bootedSlot,
      activeSlot: env.activeSlot,
      ...(digest ? { digest } : {}),
      slots,
      ...(this.progress ? { progress: this.progress } : {}),
      // The transfer size rides on the message too, so the server's status.os and `describe host` show it.
      ...(state.message ? { message: this.progress ? `${state.message}; ${transferText(this.progress)}` : state.message } : {}),
      ...(state.error ? { error: state.error } : {}),
      ...(state.failedImages.length
        ? { failedImages: state.failedImages.map(({ digest, attempt, slot, reason, at }) => ({ digest, attempt, slot: slot as Slot, reason, at })) }
        : {}),
    };
  }

  private requireBoot(): SlotBoot {
    if (!this.boot)
      throw new ManagerFailure({ phase: 'prepare', component: 'os', retryable: false, message: 'this device has no A/B slots; it cannot take OS images' });
    return this.boot;
  }

  private async loadState(): Promise<OsState> {
    this.state ??= await loadOsState(this.options.dataDir);
    return this.state;
  }

  private async setPhase(phase: OsState['phase'], message: string, error?: OsState['error']): Promise<void> {
    const state = await this.loadState();
    this.state = { ...state, phase, message, error };
    await saveOsState(this.options.dataDir, this.state);
  }
}

/**
 * Phases that mean nothing once the spec no longer names an image. A fallback is one of them: the
 * failed image itself stays in failedImages (the host's memory), not in the phase.
 */
const STALE_WITHOUT_SPEC = new Set<OsState['phase']>(['Downloading', 'Writing', 'Staged', 'Failed', 'FellBack']);

/**
 * The failed image that keeps `desired` from being tried: same digest under the same attempt. The
 * same spec sent again (a reconnect, a restart) is the same attempt, so a fallback never loops.
 */
function blockedBy(desired: OsSpec | undefined, state: OsState): FailedImage | undefined {
  if (!desired) return undefined;
  const attempt = osAttempt(desired);
  return state.failedImages.find((f) => f.digest === desired.digest && f.attempt === attempt);
}

function failure(digest: string, desired: OsSpec | undefined, slot: Slot, reason: string): FailedImage {
  // The attempt of the spec that asked for this digest (a spec that moved on to another one tells nothing about it).
  const attempt = osAttempt(desired?.digest === digest ? desired : { digest });
  return { digest, attempt, slot, reason, at: new Date().toISOString() };
}

function withFailure(list: FailedImage[], entry: FailedImage): FailedImage[] {
  return [entry, ...withoutDigest(list, entry.digest)].slice(0, MAX_FAILED_IMAGES);
}

function withoutDigest(list: FailedImage[], digest: string | undefined): FailedImage[] {
  return list.filter((f) => f.digest !== digest);
}

/** "3.1 of 12.0 MiB downloaded, 880.2 MiB reused from the device's slots" */
function transferText(p: { bytes: number; total: number; reused?: number }): string {
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  return `${mib(p.bytes)} of ${mib(p.total)} MiB downloaded${p.reused !== undefined ? `, ${mib(p.reused)} MiB reused from the device's slots` : ''}`;
}

function passiveOf(booted: Slot): Slot {
  return booted === 'A' ? 'B' : 'A';
}

function toFailure(err: unknown): ManagerFailure {
  if (err instanceof ManagerFailure) return err;
  if (err instanceof OciError) return new ManagerFailure({ phase: 'prepare', component: 'os', retryable: err.retryable, message: err.message });
  return new ManagerFailure({ phase: 'prepare', component: 'os', retryable: true, message: (err as Error).message });
}
