import os from 'node:os';
import { join } from 'node:path';
import type { Inventory } from '@edgeplane/protocol';
import type { Device } from '../device.js';
import { type ExecOptions, type ExecResult, execCommand } from '../exec.js';
import { RootedFiles } from '../files.js';
import { type HttpResult, httpGet } from '../http.js';
import type { KubernetesClient } from '../kube-client.js';
import { type Libvirt, LibvirtConnections } from '../libvirt.js';
import { runTool } from '../run-tool.js';
import { SystemdServiceManager } from '../services.js';
import { LinuxKubernetesClient } from './linux-kube-client.js';
import { LinuxProcesses } from './linux-processes.js';
import { type LinuxSlotOptions, LinuxSlots } from './linux-slots.js';

/** The parts of node:os the device reads; injectable so tests with a fake root are not mixed with the real host. */
export interface OsFacts {
  hostname(): string;
  release(): string;
  arch(): string;
  cpus(): os.CpuInfo[];
  networkInterfaces(): NodeJS.Dict<os.NetworkInterfaceInfo[]>;
}

export interface LinuxDeviceOptions {
  /** Root of the file tree to read; '/' on a real machine, a fake tree in tests (`--device-root`). */
  root?: string;
  os?: Partial<OsFacts>;
  /**
   * A/B slot targets and grubenv location (defaults: partitions labelled root-a/root-b; the ESP's
   * EFI/edgeplane/grubenv under <root>/boot/efi when present, else <root>/boot/grub/grubenv), or
   * 'unmanaged': a host that keeps its own OS and has no A/B slots.
   */
  slots?: Omit<LinuxSlotOptions, 'root'> | 'unmanaged';
}

/** Block devices that are not disks of the machine. */
const VIRTUAL_BLOCK = /^(loop|ram|zram|dm-|md|sr|fd|nbd)/;

/** The real machine. Every file is read below `root`; an unreadable file only leaves its field empty. */
export class LinuxDevice implements Device {
  readonly kind = 'linux' as const;
  readonly root: string;
  private readonly os: OsFacts;

  constructor(options: LinuxDeviceOptions = {}) {
    this.root = options.root ?? '/';
    this.os = { hostname: os.hostname, release: os.release, arch: os.arch, cpus: os.cpus, networkInterfaces: os.networkInterfaces, ...options.os };
    this.boot = options.slots === 'unmanaged' ? 'unmanaged' : new LinuxSlots({ root: this.root, ...options.slots });
    this.files = new RootedFiles(this.root);
  }

  /** A/B slots on partitions (or image files) and the grubenv boot environment; 'unmanaged' without them. */
  readonly boot: LinuxSlots | 'unmanaged';

  /** The machine's files under `root`. */
  readonly files: RootedFiles;

  /** Shells and commands on this machine (node-pty, child processes; `runuser` to switch user). */
  readonly processes = new LinuxProcesses();

  httpGet(url: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<HttpResult> {
    return httpGet(url, options);
  }

  /** A real reboot ends the agent process: there is nothing to call back. */
  onReboot(_listener: () => void): () => void {
    return () => {};
  }

  /** A real machine's sessions need no notice. */
  sessionNotice(_user: string): string | undefined {
    return undefined;
  }

  /**
   * Reboots the machine; the agent process ends with it. Under systemd through `systemctl reboot`,
   * else (Edgeplane OS runs busybox init) `reboot`, which has init run the shutdown scripts first.
   */
  async reboot(): Promise<void> {
    const systemd = await this.files.stat('run/systemd/system');
    if (systemd) await runTool('systemctl', ['reboot']);
    else await runTool('reboot', []);
  }

  exec(command: string, args: string[], options?: ExecOptions): Promise<ExecResult> {
    return execCommand(command, args, options);
  }

  /** systemd, through `systemctl`. */
  readonly services = new SystemdServiceManager((command, args, options) => this.exec(command, args, options));

  /** @kubernetes/client-node with the kubeconfig file at `kubeconfigPath` under `root`. */
  kubernetes(kubeconfigPath: string): KubernetesClient {
    return new LinuxKubernetesClient(this.root, kubeconfigPath);
  }

  private readonly libvirts = new LibvirtConnections();

  /** libvirt at `uri` (qemu:///system on an appliance) through one long-lived virsh session. */
  libvirt(uri: string): Libvirt {
    return this.libvirts.get(uri);
  }

  close(): Promise<void> {
    return this.libvirts.closeAll();
  }

  /** DMI product_uuid when readable and meaningful (root-only on real machines; all 0/f on some boards), else machine-id. */
  async deviceUid(): Promise<string> {
    const uuid = usableProductUuid(await this.read('sys/class/dmi/id/product_uuid'));
    if (uuid) return uuid;
    const machineId = await this.read('etc/machine-id');
    if (machineId) return machineId.toLowerCase();
    throw new Error(`no device UID: neither ${this.path('sys/class/dmi/id/product_uuid')} nor ${this.path('etc/machine-id')} is readable`);
  }

  async inventory(): Promise<Inventory> {
    const [productUuid, vendor, productName, serial, machineId, cpuinfo, meminfo, osRelease, disks, nics] = await Promise.all([
      this.read('sys/class/dmi/id/product_uuid'),
      this.read('sys/class/dmi/id/sys_vendor'),
      this.read('sys/class/dmi/id/product_name'),
      this.read('sys/class/dmi/id/product_serial'),
      this.read('etc/machine-id'),
      this.read('proc/cpuinfo'),
      this.read('proc/meminfo'),
      this.read('etc/os-release').then((v) => v ?? this.read('usr/lib/os-release')),
      this.disks(),
      this.nics(),
    ]);
    const cpu = parseCpuinfo(cpuinfo);
    const release = parseOsRelease(osRelease ?? '');
    return {
      hostname: clip(this.os.hostname(), 253),
      machineId: clip(machineId ?? '', 128),
      dmi: dropUndefined({
        productUuid: productUuid && clip(productUuid.toLowerCase(), 128),
        vendor: vendor && clip(vendor, 256),
        productName: productName && clip(productName, 256),
        serial: serial && clip(serial, 256),
      }),
      cpu: {
        model: clip(cpu.model || this.os.cpus()[0]?.model || '', 256),
        cores: cpu.cores || this.os.cpus().length,
        arch: this.os.arch(),
      },
      memoryBytes: parseMemTotal(meminfo) ?? os.totalmem(),
      disks,
      nics,
      os: { name: clip(release.NAME ?? 'Linux', 256), version: clip(release.VERSION_ID ?? release.VERSION ?? '', 128), kernel: clip(this.os.release(), 256) },
    };
  }

  private path(rel: string): string {
    return join(this.root, rel);
  }

  /** Trimmed file content, or undefined if missing, unreadable or empty. */
  private async read(rel: string): Promise<string | undefined> {
    const text = (await this.files.readText(rel).catch(() => undefined))?.trim();
    return text === '' ? undefined : text;
  }

  private list(rel: string): Promise<string[] | undefined> {
    return this.files.list(rel).catch(() => undefined);
  }

  private async disks(): Promise<Inventory['disks']> {
    const names = ((await this.list('sys/block')) ?? []).filter((n) => !VIRTUAL_BLOCK.test(n));
    const disks = await Promise.all(
      names.map(async (name) => {
        const [size, rotational, model] = await Promise.all([
          this.read(`sys/block/${name}/size`),
          this.read(`sys/block/${name}/queue/rotational`),
          this.read(`sys/block/${name}/device/model`),
        ]);
        const sectors = Number(size);
        return dropUndefined({
          name: clip(name, 64),
          // /sys/block/<dev>/size counts 512-byte sectors whatever the device's logical block size.
          sizeBytes: Number.isSafeInteger(sectors) && sectors > 0 ? sectors * 512 : 0,
          model: model ? clip(model, 256) : undefined,
          rotational: rotational === undefined ? undefined : rotational === '1',
        });
      }),
    );
    return disks.slice(0, 256);
  }

  private async nics(): Promise<Inventory['nics']> {
    const ifaces = this.os.networkInterfaces();
    // Interface names come from the tree when it has them (so a fake root is self-contained), else from the OS.
    const names = (await this.list('sys/class/net')) ?? Object.keys(ifaces).sort();
    const nics: Inventory['nics'] = [];
    for (const name of names) {
      if (name === 'lo') continue;
      const infos = ifaces[name] ?? [];
      const mac = (await this.read(`sys/class/net/${name}/address`)) ?? infos.find((i) => i.mac && i.mac !== '00:00:00:00:00:00')?.mac;
      if (mac === undefined && infos.length === 0) continue; // e.g. /sys/class/net/bonding_masters, a file
      nics.push({ name: clip(name, 64), mac: clip(mac ?? '', 64), addresses: infos.map((i) => i.cidr ?? i.address).slice(0, 64) });
    }
    return nics.slice(0, 256);
  }
}

/** Lower-cased product_uuid, or undefined when absent or a placeholder (all zeros / all f). */
export function usableProductUuid(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const uuid = raw.trim().toLowerCase();
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]+$/.test(hex) || /^0+$/.test(hex) || /^f+$/.test(hex)) return undefined;
  return uuid;
}

export function parseCpuinfo(text: string | undefined): { model: string; cores: number } {
  if (!text) return { model: '', cores: 0 };
  let cores = 0;
  let model = '';
  for (const line of text.split('\n')) {
    const idx = line.indexOf(':');
    if (idx < 0) continue;
    const key = line.slice(0, idx).trim();
    const value = line.slice(idx + 1).trim();
    if (key === 'processor') cores++;
    // x86 says "model name"; some ARM kernels only give "Hardware" or "Processor".
    else if (!model && (key === 'model name' || key === 'Hardware' || key === 'Processor') && value) model = value;
  }
  return { model, cores };
}

export function parseMemTotal(text: string | undefined): number | undefined {
  const m = text?.match(/^MemTotal:\s+(\d+)\s*kB/m);
  return m ? Number(m[1]) * 1024 : undefined;
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
    if (m) out[m[1]] = m[2].trim().replace(/^(["'])(.*)\1$/, '$2');
  }
  return out;
}

function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s;
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
