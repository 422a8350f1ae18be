import { join } from 'node:path';
import { ManagerError, OsStatus, osAttempt } from '@edgeplane/protocol';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../../atomic-file.js';

/** An image whose trial boot fell back, and under which attempt (osAttempt: digest, health checks, retry). */
export const FailedImage = z.object({ digest: z.string(), attempt: z.string(), slot: z.string(), reason: z.string(), at: z.string() });
export type FailedImage = z.infer<typeof FailedImage>;

/** How many failed images a host remembers (newest first); an older one is then tried again on request only by its digest. */
export const MAX_FAILED_IMAGES = 8;

/** What the os manager remembers across restarts and reboots (<dataDir>/os/state.json). */
export const OsState = z.object({
  phase: OsStatus.shape.phase.default('Idle'),
  message: z.string().optional(),
  error: ManagerError.optional(),
  /** Images whose trial boot fell back: not tried again under the same attempt (see osAttempt). */
  failedImages: z.array(FailedImage).default([]),
  /** The single failed image older agents kept (no attempt): read once, then kept in failedImages. */
  failed: z.object({ digest: z.string(), slot: z.string(), reason: z.string(), at: z.string() }).optional(),
});
export type OsState = z.infer<typeof OsState>;

export function osStatePath(dataDir: string): string {
  return join(dataDir, 'os', 'state.json');
}

export async function loadOsState(dataDir: string): Promise<OsState> {
  const raw = await readJsonFile(osStatePath(dataDir)).catch(() => undefined);
  const parsed = OsState.safeParse(raw ?? {});
  const state = parsed.success ? parsed.data : OsState.parse({});
  if (state.failed) {
    // Its health checks are unknown: the record blocks the digest under the spec without checks or retry.
    const { failed, ...rest } = state;
    return { ...rest, failedImages: [{ ...failed, attempt: osAttempt({ digest: failed.digest }) }, ...rest.failedImages].slice(0, MAX_FAILED_IMAGES) };
  }
  return state;
}

export async function saveOsState(dataDir: string, state: OsState): Promise<void> {
  await writeFileAtomic(osStatePath(dataDir), `${JSON.stringify(state, null, 2)}\n`);
}
