import { join } from 'node:path';
import { DesiredHostSpec } from '@edgeplane/protocol';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from './atomic-file.js';

export const SPEC_FILE = 'spec.json';

/** The last desired spec received, kept so the agent can keep converging while offline and after a restart. */
export const StoredSpec = z.object({
  generation: z.number().int().nonnegative(),
  spec: DesiredHostSpec,
  receivedAt: z.string(),
});
export type StoredSpec = z.infer<typeof StoredSpec>;

/** The persisted spec; undefined when none was received yet. Throws on a corrupt file so the caller can log it. */
export async function loadSpec(dataDir: string): Promise<StoredSpec | undefined> {
  const file = join(dataDir, SPEC_FILE);
  const raw = await readJsonFile(file);
  if (raw === undefined) return undefined;
  const parsed = StoredSpec.safeParse(raw);
  if (!parsed.success) throw new Error(`${file} is not a valid stored spec`);
  return parsed.data;
}

export async function saveSpec(dataDir: string, spec: Omit<StoredSpec, 'receivedAt'>): Promise<StoredSpec> {
  const stored: StoredSpec = { ...spec, receivedAt: new Date().toISOString() };
  await writeFileAtomic(join(dataDir, SPEC_FILE), `${JSON.stringify(stored, null, 2)}\n`);
  return stored;
}
