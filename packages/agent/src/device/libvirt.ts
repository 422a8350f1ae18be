import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LibvirtDomainInfo, LibvirtInventory } from '@edgeplane/protocol';
import { readImageInfo } from '../oci/os-image.js';
import type { SlotMeta } from './boot-env.js';
import { execCommand } from './exec.js';
import { diskLayout, MiB, treeBytes, writeOsDisk } from './linux/os-disk.js';
import { VirshError, VirshSession } from './linux/virsh-session.js';

/** Deadline of one volume upload (an OS disk of a few GiB, sparse). */
const UPLOAD_TIMEOUT_MS = 30 * 60_000;
/** Size of the volume standing for an OS disk on libvirt's test driver, which boots nothing. */
const SIMULATED_OS_DISK = '4G';

/**
 * Slot size (MiB) of a VM's OS disk for an image tree: what the tree needs as ext4 (about 10% plus
 * 64 MiB), twice over, since the guest's later images must fit the same slots (an update never
 * resizes them); at least the installer default of 512 MiB, in steps of 128 MiB.
 */
export function vmSlotMiB(tree: number): number {
  return Math.max(512, Math.ceil((2 * (tree * 1.1 + 64 * MiB)) / MiB / 128) * 128);
}

/** The same for an image with squashfs slots (Edgeplane OS 2), from its slot image's size: twice it, at least 512 MiB, in steps of 128 MiB. */
export function vmSquashfsSlotMiB(image: number): number {
  return Math.max(512, Math.ceil((2 * image) / MiB / 128) * 128);
}

/** Parses virsh's "Key:   value" listings (nodeinfo, dominfo, pool-info). */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line.trim());
    if (m) out[m[1].trim()] = m[2].trim();
  }
  return out;
}

const kib = (v: string | undefined) => Number.parseInt(v ?? '0', 10) || 0;

/**
 * A libvirt connection as the agent uses it: typed calls over one long-lived virsh session
 * (see VirshSession). The same class serves a real appliance (qemu:///system) and the simulator
 * (test:///default, libvirt's own test driver: real libvirt API, no guests run).
 */
export class Libvirt {
  readonly session: VirshSession;

  constructor(readonly uri: string) {
    this.session = new VirshSession(uri);
  }

  /** True for libvirt's test driver: domains are modelled, nothing boots. */
  get simulated(): boolean {
    return this.uri.startsWith('test:');
  }

  /** Domain type for generated XML: the test driver's own, else kvm when /dev/kvm exists, else qemu (TCG). */
  domainType(kvm: boolean): 'test' | 'kvm' | 'qemu' {
    return this.simulated ? 'test' : kvm ? 'kvm' : 'qemu';
  }

  run(...argv: string[]): Promise<string> {
    return this.session.run(...argv);
  }

  close(): Promise<void> {
    return this.session.close();
  }

  async inventory(): Promise<LibvirtInventory> {
    const node = parseKeyValues(await this.run('nodeinfo'));
    const networks = (await this.run('net-list', '--all'))
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((c) => c.length >= 2 && c[0])
      .map((c) => ({ name: c[0], active: c[1] === 'active' }));
    const pools = [];
    for (const name of await this.names('pool-list', '--all', '--name')) {
      const info = parseKeyValues(await this.run('pool-info', name, '--bytes'));
      pools.push({
        name,
        active: info.State === 'running',
        capacityBytes: Number(info.Capacity ?? 0) || 0,
        availableBytes: Number(info.Available ?? 0) || 0,
      });
    }
    const domains: LibvirtDomainInfo[] = [];
    for (const name of await this.names('list', '--all', '--name')) {
      const d = await this.domainInfo(name).catch(() => undefined);
      if (d) domains.push(d);
    }
    const cpus = Number.parseInt(node['CPU(s)'] ?? '0', 10) || 0;
    const memoryMiB = Math.floor(kib(node['Memory size']) / 1024);
    const allocated = { vcpus: domains.reduce((n, d) => n + (d.vcpus ?? 0), 0), memoryMiB: domains.reduce((n, d) => n + (d.memoryMiB ?? 0), 0) };
    const diskGiB = Math.floor(pools.filter((p) => p.active).reduce((n, p) => n + p.availableBytes, 0) / 1024 ** 3);
    return {
      uri: this.uri,
      cpus,
      memoryMiB,
      networks,
      pools,
      domains,
      allocated,
      free: `vcpu ${allocated.vcpus}/${cpus} mem ${allocated.memoryMiB}/${memoryMiB}MiB disk-free ${diskGiB}GiB`,
      ...(this.simulated ? { simulated: true } : {}),
    };
  }

  async names(...argv: string[]): Promise<string[]> {
    return (await this.run(...argv))
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  async domainInfo(name: string): Promise<LibvirtDomainInfo | undefined> {
    try {
      const d = parseKeyValues(await this.run('dominfo', name));
      return { name, uuid: d.UUID, state: d.State ?? 'unknown', vcpus: Number(d['CPU(s)']) || 0, memoryMiB: Math.floor(kib(d['Max memory']) / 1024) };
    } catch (err) {
      if (err instanceof VirshError && /not found|no domain|failed to get domain/i.test(err.message)) return undefined;
      throw err;
    }
  }

  /** Defines (or redefines) a persistent domain from its XML. */
  async define(xml: string): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-virt-'));
    try {
      await writeFile(join(dir, 'domain.xml'), xml, { mode: 0o600 });
      await this.run('define', join(dir, 'domain.xml'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  dumpxml(name: string, inactive = true): Promise<string> {
    return inactive ? this.run('dumpxml', name, '--inactive') : this.run('dumpxml', name);
  }

  async volumeExists(pool: string, volume: string): Promise<boolean> {
    return (await this.names('vol-list', pool)).some((l) => l.split(/\s+/)[0] === volume);
  }

  async poolVolumes(pool: string): Promise<string[]> {
    return (await this.names('vol-list', pool)).map((l) => l.split(/\s+/)[0]);
  }

  /** Capacity of a volume in bytes. */
  async volumeBytes(pool: string, volume: string): Promise<number> {
    // vol-info --bytes says e.g. "Capacity:       1073741824 bytes".
    return Number.parseInt(parseKeyValues(await this.run('vol-info', volume, '--pool', pool, '--bytes')).Capacity ?? '0', 10) || 0;
  }

  /** Volumes of `pool` whose backing file is `volume` (qcow2 overlays of it). */
  async overlaysOf(pool: string, volume: string): Promise<string[]> {
    const path = (await this.run('vol-path', volume, '--pool', pool)).trim();
    const out: string[] = [];
    for (const v of await this.poolVolumes(pool)) {
      if (v === volume) continue;
      const xml = await this.run('vol-dumpxml', v, '--pool', pool).catch(() => '');
      if (/<backingStore>[\s\S]*?<path>([^<]+)<\/path>/.exec(xml)?.[1] === path) out.push(v);
    }
    return out;
  }

  async deleteVolume(pool: string, volume: string): Promise<void> {
    if (await this.volumeExists(pool, volume)) await this.run('vol-delete', volume, '--pool', pool);
  }

  /**
   * A new raw volume with the content of a local file (e.g. a disk image the agent built), so that it
   * lies where QEMU reads the pool's volumes: created empty (`--allocation 0`: a dir pool would
   * otherwise preallocate it) and filled with `vol-upload --sparse`, so the file's holes stay holes.
   * A failed upload leaves no volume behind.
   */
  async uploadVolume(pool: string, volume: string, file: string): Promise<void> {
    const { size } = await stat(file);
    await this.run('vol-create-as', pool, volume, String(size), '--format', 'raw', '--allocation', '0');
    try {
      // A virsh process of its own with a long deadline: an image of some GiB takes minutes, which
      // would hold up (and outlast the per-command deadline of) the shared session's other commands.
      await execCommand('virsh', ['-q', '-c', this.uri, 'vol-upload', volume, file, '--pool', pool, '--sparse'], { timeoutMs: UPLOAD_TIMEOUT_MS });
    } catch (err) {
      await this.run('vol-delete', volume, '--pool', pool).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes the bootable A/B disk of an Edgeplane OS image as the volume `volume` of `pool`: the
   * installer disk `edgeplane image build --disk` writes (device/linux/os-disk.ts: ESP with GRUB,
   * slot A and recovery holding the image, an empty slot B, data), built from the image's extracted
   * root filesystem `tree` in `workDir` (the agent's own scratch space) and uploaded. Its slots are
   * sized for the image with room for later ones (vmSlotMiB, vmSquashfsSlotMiB). On libvirt's test driver nothing boots:
   * an empty volume stands for the disk. Consumes `tree`.
   */
  async importOsDisk(pool: string, volume: string, o: { tree: string; meta: SlotMeta; workDir: string }): Promise<void> {
    if (this.simulated) {
      await this.run('vol-create-as', pool, volume, SIMULATED_OS_DISK, '--format', 'raw');
      return;
    }
    // A squashfs slot image's size is known once written (writeOsDisk sizes the layout then).
    const squashfs = (await readImageInfo(o.tree))?.slotFilesystem === 'squashfs';
    const layout = squashfs
      ? (image: number) => diskLayout({ slotMiB: vmSquashfsSlotMiB(image) })
      : diskLayout({ slotMiB: vmSlotMiB(await treeBytes(o.tree)) });
    const disk = join(o.workDir, 'disk.img');
    try {
      await writeOsDisk({ tree: o.tree, meta: o.meta, layout, output: disk, workDir: join(o.workDir, 'parts') });
      await this.uploadVolume(pool, volume, disk);
    } finally {
      await rm(o.workDir, { recursive: true, force: true });
    }
  }
}

/** One Libvirt (one virsh session) per URI, per device. */
export class LibvirtConnections {
  private readonly byUri = new Map<string, Libvirt>();

  get(uri: string): Libvirt {
    let lv = this.byUri.get(uri);
    if (!lv) {
      lv = new Libvirt(uri);
      this.byUri.set(uri, lv);
    }
    return lv;
  }

  async closeAll(): Promise<void> {
    const all = [...this.byUri.values()];
    this.byUri.clear();
    await Promise.all(all.map((lv) => lv.close()));
  }
}
