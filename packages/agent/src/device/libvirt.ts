import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LibvirtDomainInfo, LibvirtInventory } from '@edgeplane/protocol';
import { VirshError, VirshSession } from './linux/virsh-session.js';

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
