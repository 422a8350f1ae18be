import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { SEED_VOLUME_ID } from '@edgeplane/protocol';

const run = promisify(execFile);

/**
 * Writes a cloud-init NoCloud seed ISO (volume id `cidata`, Rock Ridge + Joliet) to `out` with
 * xorriso: the same seed format the server's installer builds (server/src/installer/seed-iso.ts),
 * made on the appliance for each VM it creates.
 */
export async function writeSeedIso(out: string, files: { 'user-data': string; 'meta-data': string }): Promise<void> {
  await mkdir(dirname(out), { recursive: true });
  const dir = await mkdtemp(join(dirname(out), '.seed-'));
  try {
    const src = join(dir, 'seed');
    await mkdir(src);
    for (const [name, text] of Object.entries(files)) await writeFile(join(src, name), text, { mode: 0o600 });
    try {
      await run('xorriso', ['-as', 'mkisofs', '-quiet', '-output', join(dir, 'seed.iso'), '-volid', SEED_VOLUME_ID, '-joliet', '-rock', src], {
        timeout: 60_000,
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('building a VM seed ISO needs xorriso (Debian: apt-get install xorriso)');
      throw err;
    }
    await rename(join(dir, 'seed.iso'), out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
