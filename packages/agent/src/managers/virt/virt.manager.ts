import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { LIBVIRT_CAPABILITY, type VirtDomainStatus, type VirtSpec, type VirtStatus, type VirtVmSpec } from '@edgeplane/protocol';
import { ensureDir, readTextFile, removeTree, writeFileAtomic } from '../../atomic-file.js';
import type { Device } from '../../device/device.js';
import type { Libvirt } from '../../device/libvirt.js';
import { writeSeedIso } from '../../seed/seed-iso.js';
import { type Manager, type ManagerContext, ManagerFailure } from '../manager.js';
import { baseVolume, DOMAIN_PREFIX, diskVolume, domainXml, readDomainXml, vmConsoleLog } from './domain-xml.js';

/** Size of a base volume created for an OS image (the image is written into it on a real appliance). */
const BASE_VOLUME_SIZE = '4G';

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

  constructor(
    private readonly device: Device,
    private readonly options: VirtManagerOptions,
  ) {}

  private get libvirt(): Libvirt {
    return this.device.libvirt(this.options.uri);
  }

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

  async apply(desired: VirtSpec | undefined, ctx: ManagerContext): Promise<void> {
    // No `virt` key: nothing to do (the server sends `virt: {vms: []}` to have every VM removed).
    if (!desired) return;
    const lv = this.libvirt;
    const vms = desired.vms;
    this.phase = 'Converging';
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
      // 3. Base volumes no VM uses any more.
      const bases = new Set(vms.map((v) => `${v.storagePool}/${baseVolume(v)}`));
      for (const pool of await lv.names('pool-list', '--name')) {
        for (const vol of await lv.poolVolumes(pool)) {
          if (vol.startsWith('ep-base-') && !bases.has(`${pool}/${vol}`)) await lv.run('vol-delete', vol, '--pool', pool);
        }
      }
      this.phase = vms.length ? 'Ready' : 'Idle';
      this.message = undefined;
    } catch (err) {
      this.phase = 'Failed';
      this.message = (err as Error).message;
      throw err;
    }
  }

  private async ensure(vm: VirtVmSpec, ctx: ManagerContext): Promise<void> {
    const lv = this.libvirt;
    const base = baseVolume(vm);
    if (!(await lv.volumeExists(vm.storagePool, base))) await lv.run('vol-create-as', vm.storagePool, base, BASE_VOLUME_SIZE, '--format', 'qcow2');
    if (!(await lv.volumeExists(vm.storagePool, diskVolume(vm))))
      await lv.run(
        'vol-create-as',
        vm.storagePool,
        diskVolume(vm),
        `${vm.diskGiB}G`,
        '--format',
        'qcow2',
        '--backing-vol',
        base,
        '--backing-vol-format',
        'qcow2',
      );
    const seed = this.seedPath(vm);
    const files = { 'user-data': vm.seed.userData, 'meta-data': vm.seed.metaData };
    const hash = createHash('sha256').update(JSON.stringify(files)).digest('hex');
    // The seed ISOs and console logs are the agent's own files (its data dir), handed to libvirt by path.
    if ((await readTextFile(`${seed}.sha256`).catch(() => undefined)) !== hash) {
      await writeSeedIso(seed, files);
      await writeFileAtomic(`${seed}.sha256`, hash);
    }
    await ensureDir(dirname(this.serialLogPath(vm)));
    const xml = domainXml({ vm, type: lv.domainType(this.options.kvm ?? false), seedIso: seed, serialLog: this.serialLogPath(vm) });
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
    if (info.state !== 'running') {
      if (info.state === 'paused') await lv.run('resume', vm.domain);
      else await lv.run('start', vm.domain);
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

  private async remove(domain: string, ctx: ManagerContext): Promise<void> {
    const lv = this.libvirt;
    const facts = readDomainXml(await lv.dumpxml(domain));
    const info = await lv.domainInfo(domain);
    if (info && info.state !== 'shut off') await lv.run('destroy', domain);
    // UEFI domains have a per-VM NVRAM file libvirt refuses to leave behind without --nvram; the
    // test driver has no NVRAM and refuses the flag.
    await lv.run('undefine', domain, ...(lv.domainType(false) === 'test' ? [] : ['--nvram']));
    if (facts.pool && facts.volume && (await lv.volumeExists(facts.pool, facts.volume))) await lv.run('vol-delete', facts.volume, '--pool', facts.pool);
    const seed = this.seedPath({ domain });
    await removeTree(seed);
    await removeTree(`${seed}.sha256`);
    await removeTree(this.serialLogPath({ domain }));
    ctx.emitEvent('Normal', 'VmDeleted', `VM ${domain} destroyed, undefined and its volume removed`);
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
