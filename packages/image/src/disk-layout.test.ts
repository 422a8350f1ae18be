import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDisk } from './disk.js';
import { diskLayout, MiB, sfdiskScript } from './disk-layout.js';
import { ImageBuildError } from './tools.js';

const run = promisify(execFile);
const ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

describe('diskLayout', () => {
  it('numbers esp, root-a, root-b, data, recovery 1-5 and places data last on the disk, so it can grow to the end', () => {
    const layout = diskLayout();
    expect(layout.partitions).toEqual([
      { name: 'esp', number: 1, type: ESP, startMiB: 1, sizeMiB: 64 },
      { name: 'root-a', number: 2, type: LINUX, startMiB: 65, sizeMiB: 512 },
      { name: 'root-b', number: 3, type: LINUX, startMiB: 577, sizeMiB: 512 },
      { name: 'data', number: 4, type: LINUX, startMiB: 1601, sizeMiB: 1024 },
      { name: 'recovery', number: 5, type: LINUX, startMiB: 1089, sizeMiB: 512 },
    ]);
    // 1 MiB before the first partition (primary GPT) and 1 MiB after the last (backup GPT).
    expect(layout.sizeMiB).toBe(2626);
  });

  it('sizes every slot (A, B, recovery) with slotMiB and keeps them equal', () => {
    const layout = diskLayout({ espMiB: 32, slotMiB: 1024, dataMiB: 4096 });
    expect(layout.partitions.map((p) => [p.name, p.startMiB, p.sizeMiB])).toEqual([
      ['esp', 1, 32],
      ['root-a', 33, 1024],
      ['root-b', 1057, 1024],
      ['data', 3105, 4096],
      ['recovery', 2081, 1024],
    ]);
    expect(layout.sizeMiB).toBe(1 + 32 + 3072 + 4096 + 1);
  });

  it('renders an sfdisk script in 512-byte sectors with the GPT names and types', () => {
    expect(sfdiskScript(diskLayout())).toBe(
      [
        'label: gpt',
        'unit: sectors',
        '',
        `start=2048, size=131072, type=${ESP}, name="esp"`,
        `start=133120, size=1048576, type=${LINUX}, name="root-a"`,
        `start=1181696, size=1048576, type=${LINUX}, name="root-b"`,
        `start=3278848, size=2097152, type=${LINUX}, name="data"`,
        `start=2230272, size=1048576, type=${LINUX}, name="recovery"`,
        '',
      ].join('\n'),
    );
  });
});

describe('writeDisk (real sfdisk on an image file)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-disk-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const small = diskLayout({ espMiB: 2, slotMiB: 3, dataMiB: 2 });

  it('writes the GPT sfdisk reads back and each partition image at its offset', async () => {
    const esp = join(dir, 'esp.img');
    const rootA = join(dir, 'root-a.img');
    await writeFile(esp, Buffer.concat([Buffer.from('ESP-IMAGE'), Buffer.alloc(MiB)]));
    const a = Buffer.alloc(2 * MiB);
    a.write('ROOT-A', 0);
    a.write('END-A!', 2 * MiB - 6);
    await writeFile(rootA, a);
    const disk = join(dir, 'disk.img');
    await writeDisk(disk, small, { esp, 'root-a': rootA });

    const { stdout } = await run('sfdisk', ['--json', disk]);
    const table = JSON.parse(stdout).partitiontable;
    expect(table.label).toBe('gpt');
    expect(table.partitions.map((p: { name: string; type: string; start: number; size: number }) => [p.name, p.type, p.start, p.size])).toEqual([
      ['esp', ESP, 2048, 4096],
      ['root-a', LINUX, 6144, 6144],
      ['root-b', LINUX, 12288, 6144],
      ['data', LINUX, 24576, 4096],
      ['recovery', LINUX, 18432, 6144],
    ]);
    const bytes = await readFile(disk);
    expect(bytes.length).toBe(small.sizeMiB * MiB);
    expect(bytes.subarray(1 * MiB, 1 * MiB + 9).toString()).toBe('ESP-IMAGE');
    expect(bytes.subarray(3 * MiB, 3 * MiB + 6).toString()).toBe('ROOT-A');
    expect(bytes.subarray(5 * MiB - 6, 5 * MiB).toString()).toBe('END-A!');
    expect(bytes.subarray(6 * MiB, 9 * MiB).equals(Buffer.alloc(3 * MiB))).toBe(true); // root-b stays empty
  });

  it('refuses a partition image larger than its partition (ImageTooLarge)', async () => {
    const big = join(dir, 'big.img');
    await writeFile(big, Buffer.alloc(3 * MiB, 1));
    const err = await writeDisk(join(dir, 'disk2.img'), small, { data: big }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageBuildError);
    expect((err as ImageBuildError).code).toBe('ImageTooLarge');
    expect((err as Error).message).toBe('data image is 3 MiB; the partition has 2 MiB');
  });
});
