import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class SeedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SeedError';
  }
}

export interface SeedContents {
  userData: string;
  metaData?: string;
}

/**
 * Reads a cloud-init NoCloud seed: a directory holding `user-data` (and `meta-data`), or an ISO image
 * or block device (e.g. /dev/sr0) with volume id `cidata`. An image is read without mounting it
 * (`xorriso -osirrox on -extract`), so the agent needs no mount privileges and leaves nothing mounted.
 */
export async function readNoCloudSeed(seed: string): Promise<SeedContents> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(seed);
  } catch (err) {
    throw new SeedError(`cannot read seed ${seed}: ${(err as Error).message}`);
  }
  if (info.isDirectory()) return readSeedDir(seed, seed);
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-seed-'));
  try {
    try {
      await run('xorriso', ['-osirrox', 'on', '-indev', seed, '-extract', '/', join(dir, 'seed')], { timeout: 60_000 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT') throw new SeedError('reading a seed image needs xorriso (Debian: apt-get install xorriso)');
      throw new SeedError(`cannot read seed image ${seed}: ${(e.stderr ?? e.message).trim().split('\n').slice(-2).join(' ')}`);
    }
    return await readSeedDir(join(dir, 'seed'), seed);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readSeedDir(dir: string, seed: string): Promise<SeedContents> {
  let userData: string;
  try {
    userData = await readFile(join(dir, 'user-data'), 'utf8');
  } catch {
    throw new SeedError(`seed ${seed} has no user-data file`);
  }
  const metaData = await readFile(join(dir, 'meta-data'), 'utf8').catch(() => undefined);
  return { userData, ...(metaData !== undefined ? { metaData } : {}) };
}
