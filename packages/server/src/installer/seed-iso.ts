import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EdgeplaneError, SEED_VOLUME_ID } from '@edgeplane/protocol';

const run = promisify(execFile);

export interface SeedFiles {
  'user-data': string;
  'meta-data': string;
  'network-config'?: string;
}

/**
 * Builds a cloud-init NoCloud seed ISO (volume id `cidata`, files at the root, Rock Ridge + Joliet so
 * names keep their dashes) with Debian's xorriso, falling back to genisoimage. Real tools, because a
 * hand-written ISO 9660 image is exactly what cloud-init would choke on.
 */
export async function buildSeedIso(files: SeedFiles): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-seed-'));
  try {
    const src = join(dir, 'seed');
    const out = join(dir, 'seed.iso');
    await mkdir(src);
    for (const [name, text] of Object.entries(files)) if (text !== undefined) await writeFile(join(src, name), text, { mode: 0o600 });
    const mkisofsArgs = ['-output', out, '-volid', SEED_VOLUME_ID, '-joliet', '-rock', src];
    try {
      await run('xorriso', ['-as', 'mkisofs', ...mkisofsArgs], { timeout: 60_000 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      try {
        await run('genisoimage', mkisofsArgs, { timeout: 60_000 });
      } catch (err2) {
        if ((err2 as NodeJS.ErrnoException).code !== 'ENOENT') throw err2;
        throw new EdgeplaneError('InstallerToolMissing', 'building a seed ISO needs xorriso or genisoimage on the server (Debian: apt-get install xorriso)');
      }
    }
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
