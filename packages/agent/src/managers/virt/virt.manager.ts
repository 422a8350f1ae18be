import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { LIBVIRT_CAPABILITY, type VirtDomainStatus, type VirtSpec, type VirtStatus, type VirtVmSpec } from '@edgeplane/protocol';
import { ensureDir, readTextFile, removeTree, writeFileAtomic } from '../../atomic-file.js';
import type { Device } from '../../device/device.js';
import type { Libvirt } from '../../device/libvirt.js';
import { BlobStore, extractImage, type PulledImage, pullImage, readImageInfo, sourceFor } from '../../oci/index.js';
import { writeSeedIso } from '../../seed/seed-iso.js';
import { type Manager, type ManagerContext, ManagerFailure } from '../manager.js';
import { BASE_PREFIX, baseVolume, DOMAIN_PREFIX, diskVolume, domainXml, readDomainXml, seedVolume, vmConsoleLog } from './domain-xml.js';

export interface VirtManagerOptions {
  /** libvirt connection URI from the agent config (virt.libvirtUri). */
  uri: string;
  dataDir: string;
  /** Whether /dev/kvm is usable (kvm domains), else qemu (TCG). */
  kvm?: boolean;
  /** How long a guest gets to shut down (ACPI) before it is destroyed. */
  shutdownTimeoutMs?: number;
}

/**
 * The `virt` manager of an appliance (DESIGN.md "Agent managers": os -> kubernetes -> addons -> virt).
 * Converges the appliance's libvirt to the VMs of spec.virt: creates disk volumes (qcow2 overlays of
 * the OS image's base volume) and a NoCloud seed ISO per VM, defines and starts domains, resizes
 * (shutdown, redefine, start; one VM at a time) and removes domains it owns (prefix `ep-`) that are
 * no longer wanted, with their volumes and seeds. Reports the libvirt inventory and each domain.
 */
export class VirtManager implements Manager<'virt'> {
  readonly name = 'virt' as const;
  readonly capability = LIBVIRT_CAPABILITY;
  private phase: VirtStatus['phase'] = 'Idle';
  private message?: string;
  /**
   * The spec of the last apply pass that finished (JSON), and its VMs' domains. Unset while a pass
   * runs: the pass itself shuts VMs down (resize) and starts them, which is no drift.
   */
  private applied?: { json: string; domains: string[] };

  constructor(
    private readonly device: Device,
    private readonly options: VirtManagerOptions,
  ) {}

  private get libvirt(): Libvirt {
    return this.device.libvirt(this.options.uri);
  }

  /** Images pulled during this apply pass (one download per digest, however many pools need its base). */
  private pulled = new Map<string, PulledImage>();

  private get workDir(): string {
    return join(this.options.dataDir, 'virt', 'work');
  }

  /** The seed ISO as the agent writes it (kept on the test driver, where the domain reads it from here). */
  private seedPath(vm: Pick<VirtVmSpec, 'domain'>): string {
    return join(this.options.dataDir, 'virt', 'seeds', `${vm.domain}.iso`);
  }

  /** The guest's serial console as libvirt's virtlogd copies it (the domain XML names it). */
  serialLogPath(vm: Pick<VirtVmSpec, 'domain'>): string {
    return vmConsoleLog(this.options.dataDir, vm.domain);
  }

  async prepare(desired: VirtSpec | undefined): Promise<void> {
    const inv = await this.libvirt.inventory();
    for (const vm of desired?.vms ?? []) {
      if (!inv.networks.some((n) => n.name === vm.network))
        throw new ManagerFailure({ phase: 'prepare', component: 'virt', retryable: true, message: `libvirt network "${vm.network}" does not exist` });
      if (!inv.pools.some((p) => p.name === vm.storagePool))
        throw new ManagerFailure({ phase: 'prepare', component: 'virt', retryable: true, message: `storage pool "${vm.storagePool}" does not exist` });
    }
  }

  /**
   * Converged when the last apply pass finished with this very spec and none of its VMs is shut off
   * (a guest that rebooted or powered off: see domain-xml.ts, every reset of a VM is a power cycle).
   * A changed spec, or an agent that restarted, always gets an apply pass.
   */
  async converged(desired: VirtSpec | undefined): Promise<boolean> {
    if (!desired) return true;
    if (this.applied?.json !== JSON.stringify(desired)) return false;
    return (await this.stoppedVms()).length === 0;
  }

  /**
   * The VMs of the last applied spec whose domain is shut off: a guest reboot, power-off or watchdog
   * expiry ended its QEMU (domain-xml.ts), and the next apply pass starts it again. Empty while a pass
   * runs (it shuts VMs down on purpose to resize them) and before the first pass finished.
   */
  async drifted(): Promise<boolean> {
    return (await this.stoppedVms()).length > 0;
  }

  async stoppedVms(): Promise<string[]> {
    if (!this.applied?.domains.length) return [];
    const off = new Set(await this.libvirt.names('list', '--state-shutoff', '--name'));
    return this.applied.domains.filter((d) => off.has(d));
  }

  async apply(desired: VirtSpec | undefined, ctx: ManagerContext): Promise<void> {
    // No `virt` key: nothing to do (the server sends `virt: {vms: []}` to have every VM removed).
    if (!desired) return;
    const lv = this.libvirt;
    const vms = desired.vms;
    this.phase = 'Converging';
    this.applied = undefined;
    try {
      const wanted = new Set(vms.map((v) => v.domain));
      // 1. Remove domains this manager created that are no longer wanted.
      for (const name of await lv.names('list', '--all', '--name')) {
        if (!name.startsWith(DOMAIN_PREFIX) || wanted.has(name)) continue;
        ctx.signal.throwIfAborted();
        await this.remove(name, ctx);
      }
      // 2. Create or update the wanted ones, one at a time.
      for (const vm of vms) {
        ctx.signal.throwIfAborted();
        await this.ensure(vm, ctx);
        await ctx.reportProgress();
      }
      // 3. Base volumes no VM uses any more (the last VM of that image in that pool went with its
      // cluster). A VM upgraded inside its guest keeps the disk it was created with: its overlay is
      // still backed by the old image's base, which stays until that disk goes.
      const bases = new Set(vms.map((v) => `${v.storagePool}/${baseVolume(v)}`));
      for (const pool of await lv.names('pool-list', '--name')) {
        for (const vol of await lv.poolVolumes(pool)) {
          if (!vol.startsWith(BASE_PREFIX) || bases.has(`${pool}/${vol}`)) continue;
          if (await this.backsAnyDisk(pool, vol)) continue;
          await lv.run('vol-delete', vol, '--pool', pool);
          await removeTree(join(this.options.dataDir, 'virt', 'bases', pool, vol));
        }
      }
      this.phase = vms.length ? 'Ready' : 'Idle';
      this.message = undefined;
      this.applied = { json: JSON.stringify(desired), domains: vms.map((v) => v.domain) };
    } catch (err) {
      this.phase = 'Failed';
      this.message = (err as Error).message;
      throw err;
    } finally {
      this.pulled.clear();
      await removeTree(this.workDir);
    }
  }

  /**
   * The base volume of the VM's OS image in its pool: the image pulled by digest (as the os manager
   * pulls it for a native host's slot, into the agent's own data dir) and written as the bootable
   * A/B disk a device is installed with (Libvirt.importOsDisk). Built once per digest and pool and
   * kept while any VM disk there is backed by it: later VMs of that image start from it at once.
   */
  private async ensureBase(vm: VirtVmSpec, ctx: ManagerContext): Promise<void> {
    const lv = this.libvirt;
    const base = baseVolume(vm);
    // The agent records each base it finished writing: one that exists without the record is a write
    // cut short (agent or machine stopped mid-upload) and is written again, unless VM disks are
    // already backed by it (it was finished; the record went with the data dir).
    const done = join(this.options.dataDir, 'virt', 'bases', vm.storagePool, base);
    if (await lv.volumeExists(vm.storagePool, base)) {
      if ((await readTextFile(done).catch(() => undefined)) === vm.image.digest) return;
      if ((await lv.overlaysOf(vm.storagePool, base)).length) {
        await writeFileAtomic(done, vm.image.digest);
        return;
      }
      ctx.log.warn({ pool: vm.storagePool, volume: base }, 'virt: base volume without a finished write; writing it again');
      await lv.deleteVolume(vm.storagePool, base);
    }
    await this.writeBase(vm, base, ctx);
    await writeFileAtomic(done, vm.image.digest);
  }

  private async writeBase(vm: VirtVmSpec, base: string, ctx: ManagerContext): Promise<void> {
    const lv = this.libvirt;
    const meta = { digest: vm.image.digest, image: vm.image.image, writtenAt: new Date().toISOString() };
    if (lv.simulated) {
      // libvirt's test driver boots nothing: no image is pulled, an empty volume stands for the disk.
      await lv.importOsDisk(vm.storagePool, base, { tree: this.workDir, meta: { ...meta, name: 'simulated', version: '0' }, workDir: this.workDir });
      return;
    }
    const store = new BlobStore(join(this.workDir, 'blobs'));
    let pulled = this.pulled.get(vm.image.digest);
    if (!pulled) {
      ctx.log.info({ digest: vm.image.digest }, `virt: pulling ${vm.image.image} for the VMs' base disk`);
      pulled = await pullImage({ source: sourceFor(vm.image.image, { insecure: vm.image.insecure }), digest: vm.image.digest, store, signal: ctx.signal });
      this.pulled.set(vm.image.digest, pulled);
    }
    const tree = join(this.workDir, 'rootfs');
    await removeTree(tree);
    await extractImage(store, pulled.manifest, tree, ctx.signal);
    const info = await readImageInfo(tree);
    if (!info)
      throw new ManagerFailure({
        phase: 'apply',
        component: 'virt',
        retryable: false,
        message: `image ${vm.image.digest} is not an Edgeplane OS image: no valid /usr/lib/edgeplane/image.json`,
      });
    await lv.importOsDisk(vm.storagePool, base, { tree, meta: { ...meta, ...info }, workDir: join(this.workDir, 'disk') });
    ctx.emitEvent('Normal', 'VmBaseDiskCreated', `OS disk of ${info.name} ${info.version} (${vm.image.digest}) written to ${vm.storagePool}/${base}`);
  }

  /**
   * The VM's NoCloud seed, rewritten when its content changes: on a real hypervisor a volume of the
   * VM's pool (QEMU cannot read the agent's 0700 data dir), on the test driver the agent's own file.
   */
  private async ensureSeed(vm: VirtVmSpec): Promise<{ volume: string } | { file: string }> {
    const lv = this.libvirt;
    const iso = this.seedPath(vm);
    const files = { 'user-data': vm.seed.userData, 'meta-data': vm.seed.metaData };
    const hash = createHash('sha256').update(JSON.stringify(files)).digest('hex');
    const current = (await readTextFile(`${iso}.sha256`).catch(() => undefined)) === hash;
    if (lv.simulated) {
      if (!current) {
        await writeSeedIso(iso, files);
        await writeFileAtomic(`${iso}.sha256`, hash);
      }
      return { file: iso };
    }
    const volume = seedVolume(vm);
    if (!current || !(await lv.volumeExists(vm.storagePool, volume))) {
      await writeSeedIso(iso, files);
      await lv.deleteVolume(vm.storagePool, volume);
      await lv.uploadVolume(vm.storagePool, volume, iso);
      await removeTree(iso); // it carries the registration token: the pool's copy is the one kept
      await writeFileAtomic(`${iso}.sha256`, hash);
    }
    return { volume };
  }

  private async ensure(vm: VirtVmSpec, ctx: ManagerContext): Promise<void> {
    const lv = this.libvirt;
    const base = baseVolume(vm);
    // The image is where a new VM's disk starts from. A VM that has its disk already is upgraded
    // inside the guest (its os manager writes the other A/B slot), so a new image in the spec, e.g.
    // an OS upgrade of its cluster, writes no base volume and leaves the disk alone.
    if (!(await lv.volumeExists(vm.storagePool, diskVolume(vm)))) {
      await this.ensureBase(vm, ctx);
      // The VM's disk is a qcow2 overlay whose backing file is the base volume, not a copy of it:
      // copy-on-write, so a VM starts without copying the image and stores only what it writes; its
      // virtual size is the VM's own (diskGiB, at least the base's), so the guest grows its data
      // partition into it; and the image is downloaded and written once per digest and pool,
      // however many VMs boot it.
      const size = Math.max(vm.diskGiB * 1024 ** 3, await lv.volumeBytes(vm.storagePool, base));
      await lv.run('vol-create-as', vm.storagePool, diskVolume(vm), String(size), '--format', 'qcow2', '--backing-vol', base, '--backing-vol-format', 'raw');
      await writeFileAtomic(this.diskBaseRecord(vm.storagePool, diskVolume(vm)), base);
    }
    const seed = await this.ensureSeed(vm);
    await ensureDir(dirname(this.serialLogPath(vm)));
    const xml = domainXml({ vm, type: lv.domainType(this.options.kvm ?? false), seed, serialLog: this.serialLogPath(vm) });
    const info = await lv.domainInfo(vm.domain);
    if (!info) {
      await lv.define(xml);
      await lv.run('start', vm.domain);
      ctx.emitEvent(
        'Normal',
        'VmCreated',
        `VM ${vm.domain} (${vm.vcpus} vCPU, ${vm.memoryMiB} MiB, ${vm.diskGiB} GiB on ${vm.storagePool}, network ${vm.network}) started`,
      );
      return;
    }
    const facts = readDomainXml(await lv.dumpxml(vm.domain));
    if (facts.vcpus !== vm.vcpus || facts.memoryMiB !== vm.memoryMiB) {
      // Resize: shut the guest down, redefine, start it again (the caller does one VM at a time).
      if (info.state !== 'shut off') await this.shutdown(vm.domain, ctx);
      await lv.define(xml);
      await lv.run('start', vm.domain);
      ctx.emitEvent('Normal', 'VmResized', `VM ${vm.domain} now has ${vm.vcpus} vCPU and ${vm.memoryMiB} MiB`);
      return;
    }
    if (info.state === 'paused') await lv.run('resume', vm.domain);
    else if (info.state !== 'running') {
      await lv.run('start', vm.domain);
      ctx.emitEvent(
        'Normal',
        'VmStarted',
        `VM ${vm.domain} was ${info.state} (a guest reboot, power-off or watchdog reset ends its QEMU) and is started again`,
      );
    }
  }

  /** ACPI shutdown, then destroy when the guest does not stop in time. */
  private async shutdown(domain: string, ctx: ManagerContext): Promise<void> {
    const lv = this.libvirt;
    await lv.run('shutdown', domain).catch(() => undefined);
    const deadline = Date.now() + (this.options.shutdownTimeoutMs ?? 120_000);
    while (Date.now() < deadline) {
      if ((await lv.domainInfo(domain))?.state === 'shut off') return;
      ctx.signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 500));
    }
    await lv.run('destroy', domain).catch(() => undefined);
  }

  /** Where the agent records which base volume a VM disk it created is backed by. */
  private diskBaseRecord(pool: string, disk: string): string {
    return join(this.options.dataDir, 'virt', 'disk-bases', pool, disk);
  }

  /**
   * True while a VM disk in `pool` is backed by the base volume: by libvirt's account of the qcow2
   * backing chain (a real hypervisor), or the agent's record of the disks it created (the test driver
   * keeps no backing chain).
   */
  private async backsAnyDisk(pool: string, base: string): Promise<boolean> {
    if ((await this.libvirt.overlaysOf(pool, base)).length > 0) return true;
    for (const volume of await this.libvirt.poolVolumes(pool)) {
      if ((await readTextFile(this.diskBaseRecord(pool, volume)).catch(() => undefined)) === base) return true;
    }
    return false;
  }

  private async remove(domain: string, ctx: ManagerContext): Promise<void> {
    const lv = this.libvirt;
    const facts = readDomainXml(await lv.dumpxml(domain));
    const info = await lv.domainInfo(domain);
    if (info && info.state !== 'shut off') await lv.run('destroy', domain);
    // UEFI domains have a per-VM NVRAM file libvirt refuses to leave behind without --nvram; the
    // test driver has no NVRAM and refuses the flag.
    await lv.run('undefine', domain, ...(lv.domainType(false) === 'test' ? [] : ['--nvram']));
    if (facts.pool && facts.volume) {
      await lv.deleteVolume(facts.pool, facts.volume);
      await removeTree(this.diskBaseRecord(facts.pool, facts.volume));
    }
    if (facts.pool && facts.seedVolume) await lv.deleteVolume(facts.pool, facts.seedVolume);
    const seed = this.seedPath({ domain });
    await removeTree(seed);
    await removeTree(`${seed}.sha256`);
    await removeTree(this.serialLogPath({ domain }));
    ctx.emitEvent('Normal', 'VmDeleted', `VM ${domain} destroyed, undefined and its volumes removed`);
  }

  async status(): Promise<VirtStatus> {
    const lv = this.libvirt;
    try {
      const libvirt = await lv.inventory();
      const domains: VirtDomainStatus[] = [];
      for (const d of libvirt.domains) {
        if (!d.name.startsWith(DOMAIN_PREFIX)) continue;
        const xml = await lv.dumpxml(d.name).catch(() => undefined);
        const meta = xml ? /<edgeplane:vm [^>]*cluster=['"]([^'"]+)['"] vm=['"]([^'"]+)['"]/.exec(xml) : null;
        domains.push({
          domain: d.name,
          state: d.state,
          vcpus: d.vcpus,
          memoryMiB: d.memoryMiB,
          ...(meta ? { cluster: meta[1], vm: meta[2] } : {}),
          ...(xml ? { xml } : {}),
        });
      }
      return { phase: this.phase, libvirt, domains, ...(this.message ? { message: this.message } : {}) };
    } catch (err) {
      return { phase: 'Failed', domains: [], message: `libvirt ${this.options.uri}: ${(err as Error).message}` };
    }
  }
}
