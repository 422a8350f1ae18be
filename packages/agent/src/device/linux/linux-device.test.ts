import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Inventory } from '@edgeplane/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LinuxDevice, type OsFacts } from './linux-device.js';

const MACHINE_ID = '0123456789abcdef0123456789abcdef';
const fakeOs: Partial<OsFacts> = {
  hostname: () => 'edge-1',
  release: () => '6.1.0-test',
  arch: () => 'x64',
  networkInterfaces: () => ({
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
    eth0: [{ address: '192.168.1.10', netmask: '255.255.255.0', family: 'IPv4', mac: 'aa:bb:cc:dd:ee:ff', internal: false, cidr: '192.168.1.10/24' }],
  }),
};

describe('LinuxDevice', () => {
  let root: string;
  const put = async (rel: string, content: string) => {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), content);
  };

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'linux-device-'));
    await put('etc/machine-id', `${MACHINE_ID}\n`);
    await put('etc/os-release', 'NAME="Edgeplane OS"\nVERSION_ID="1.2"\nID=edgeplane\n');
    await put('proc/cpuinfo', 'processor\t: 0\nmodel name\t: Test CPU @ 2GHz\n\nprocessor\t: 1\nmodel name\t: Test CPU @ 2GHz\n');
    await put('proc/meminfo', 'MemTotal:       16384000 kB\nMemFree:  1 kB\n');
    await put('sys/class/dmi/id/sys_vendor', 'Intel Corporation\n');
    await put('sys/class/dmi/id/product_name', 'NUC11\n');
    await put('sys/class/dmi/id/product_serial', 'SER123\n');
    await put('sys/block/sda/size', '1000215216\n');
    await put('sys/block/sda/queue/rotational', '1\n');
    await put('sys/block/sda/device/model', 'WDC WD5000  \n');
    await put('sys/block/nvme0n1/size', '2000\n');
    await put('sys/block/nvme0n1/queue/rotational', '0\n');
    await put('sys/block/loop0/size', '10\n');
    await put('sys/class/net/eth0/address', 'aa:bb:cc:dd:ee:ff\n');
    await put('sys/class/net/lo/address', '00:00:00:00:00:00\n');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads inventory from the tree under root', async () => {
    await put('sys/class/dmi/id/product_uuid', '4C4C4544-0042-3510-8050-B4C04F564433\n');
    const inv = await new LinuxDevice({ root, os: fakeOs }).inventory();
    expect(Inventory.parse(inv)).toEqual(inv);
    expect(inv).toMatchObject({
      hostname: 'edge-1',
      machineId: MACHINE_ID,
      dmi: { productUuid: '4c4c4544-0042-3510-8050-b4c04f564433', vendor: 'Intel Corporation', productName: 'NUC11', serial: 'SER123' },
      cpu: { model: 'Test CPU @ 2GHz', cores: 2, arch: 'x64' },
      memoryBytes: 16384000 * 1024,
      os: { name: 'Edgeplane OS', version: '1.2', kernel: '6.1.0-test' },
      nics: [{ name: 'eth0', mac: 'aa:bb:cc:dd:ee:ff', addresses: ['192.168.1.10/24'] }],
    });
    expect(inv.disks).toEqual([
      { name: 'nvme0n1', sizeBytes: 2000 * 512, rotational: false },
      { name: 'sda', sizeBytes: 1000215216 * 512, rotational: true, model: 'WDC WD5000' },
    ]);
    expect(inv.simulated).toBeUndefined();
  });

  it('uses the DMI product_uuid as device uid, lower-cased', async () => {
    await put('sys/class/dmi/id/product_uuid', '4C4C4544-0042-3510-8050-B4C04F564433\n');
    expect(await new LinuxDevice({ root }).deviceUid()).toBe('4c4c4544-0042-3510-8050-b4c04f564433');
  });

  it('falls back to machine-id when product_uuid is missing or a placeholder', async () => {
    expect(await new LinuxDevice({ root }).deviceUid()).toBe(MACHINE_ID);
    await put('sys/class/dmi/id/product_uuid', '00000000-0000-0000-0000-000000000000\n');
    expect(await new LinuxDevice({ root }).deviceUid()).toBe(MACHINE_ID);
    await put('sys/class/dmi/id/product_uuid', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n');
    expect(await new LinuxDevice({ root }).deviceUid()).toBe(MACHINE_ID);
  });

  it('tolerates a nearly empty tree and fails clearly without any uid', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'linux-device-empty-'));
    try {
      const dev = new LinuxDevice({ root: empty, os: fakeOs });
      const inv = await dev.inventory();
      expect(Inventory.parse(inv)).toEqual(inv);
      expect(inv.disks).toEqual([]);
      await expect(dev.deviceUid()).rejects.toThrow(/no device UID/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
