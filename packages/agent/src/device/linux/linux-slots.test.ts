import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsManager } from '../../managers/os/os.manager.js';
import { writeOsImage } from '../../oci/index.js';
import { runTool } from '../run-tool.js';
import { LinuxDevice } from './linux-device.js';
import type { LinuxSlots } from './linux-slots.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ep-linux-slots-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('LinuxDevice A/B slots (file-backed "partitions")', () => {
  it('stages an OS image as an ext4 filesystem in the passive slot and reads it back without mounting', async () => {
    const root = join(work, 'root');
    await mkdir(join(root, 'proc'), { recursive: true });
    await writeFile(join(root, 'proc/cmdline'), 'BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=root-a ro edgeplane.slot=A quiet\n');
    const targets = { A: join(work, 'root-a.img'), B: join(work, 'root-b.img') };
    const device = new LinuxDevice({ root, slots: { targets, imageSizeBytes: 16 * 1024 ** 2 } });
    const layout = join(work, 'layout');
    const image = await writeOsImage({ layoutDir: layout, tag: '3.0.0', name: 'Edgeplane OS', version: '3.0.0' });

    const manager = new OsManager(device, { dataDir: join(work, 'data') });
    const ctx = {
      device,
      dataDir: join(work, 'data'),
      log: pino({ level: 'silent' }),
      emitEvent: () => {},
      reportProgress: () => {},
      signal: new AbortController().signal,
    };
    await manager.prepare({ image: `oci:${layout}:3.0.0`, digest: image.digest }, ctx);

    expect(await (device.boot as LinuxSlots).bootedSlot()).toBe('A');
    expect(await (device.boot as LinuxSlots).readSlot('B')).toMatchObject({ digest: image.digest, name: 'Edgeplane OS', version: '3.0.0' });
    expect(await (device.boot as LinuxSlots).readSlot('A')).toBeUndefined();
    const { stdout } = await runTool('debugfs', ['-R', 'cat /etc/os-release', targets.B]);
    expect(stdout).toContain('VERSION_ID=3.0.0');
    const { stdout: label } = await runTool('e2label', [targets.B]);
    expect(label.trim()).toBe('root-b');
    expect(await manager.status()).toMatchObject({ phase: 'Staged', bootedSlot: 'A', slots: { B: { digest: image.digest } } });
  });
});
