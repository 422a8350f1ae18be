import { join } from 'node:path';
import { ManagerError, OsStatus } from '@edgeplane/protocol';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../../atomic-file.js';

/** What the os manager remembers across restarts and reboots (<dataDir>/os/state.json). */
export const OsState = z.object({
  phase: OsStatus.shape.phase.default('Idle'),
  message: z.string().optional(),
  error: ManagerError.optional(),
  /** The last image whose trial boot failed: not tried again until the desired digest changes. */
  failed: z.object({ digest: z.string(), slot: z.string(), reason: z.string(), at: z.string() }).optional(),
});
export type OsState = z.infer<typeof OsState>;

export function osStatePath(dataDir: string): string {
  return join(dataDir, 'os', 'state.json');
}

export async function loadOsState(dataDir: string): Promise<OsState> {
  const raw = await readJsonFile(osStatePath(dataDir)).catch(() => undefined);
  const parsed = OsState.safeParse(raw ?? {});
  return parsed.success ? parsed.data : OsState.parse({});
}

export async function saveOsState(dataDir: string, state: OsState): Promise<void> {
  await writeFileAtomic(osStatePath(dataDir), `${JSON.stringify(state, null, 2)}\n`);
}
