import { join } from 'node:path';
import type { VirtVmSpec } from '@edgeplane/protocol';

/** Namespace of the metadata element Edgeplane puts into the domains it manages. */
export const EDGEPLANE_XMLNS = 'https://edgeplane.io/xmlns/libvirt/vm/1';
/** Prefix of every domain (and its disk volume) the virt manager owns; others are left alone. */
export const DOMAIN_PREFIX = 'ep-';

const esc = (s: string | number) => String(s).replace(/[&<>'"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', "'": '&apos;', '"': '&quot;' })[c]!);

/** Directory (under the agent's data dir) where virtlogd copies each VM's serial console. */
export const vmConsoleDir = (dataDir: string) => join(dataDir, 'virt', 'console');
/** A VM's serial console log on the appliance (`edgeplane vm console`, support bundles). */
export const vmConsoleLog = (dataDir: string, domain: string) => join(vmConsoleDir(dataDir), `${domain}.log`);

export const diskVolume = (vm: Pick<VirtVmSpec, 'domain'>) => `${vm.domain}.qcow2`;
/** A VM's NoCloud seed ISO as a volume of its pool (a real hypervisor: QEMU reads the pool's files). */
export const seedVolume = (vm: Pick<VirtVmSpec, 'domain'>) => `${vm.domain}-seed.iso`;
/** Prefix of the base volumes: one per OS image digest and pool, the backing file of every VM disk of that image. */
export const BASE_PREFIX = 'ep-base-';
/** Base volume holding the OS image's bootable A/B disk (raw), shared by every VM disk of that image in a pool. */
export const baseVolume = (vm: Pick<VirtVmSpec, 'image'>) => `${BASE_PREFIX}${vm.image.digest.replace(/^sha256:/, '').slice(0, 16)}.img`;

export interface DomainXmlInput {
  vm: VirtVmSpec;
  /** 'kvm' (hardware), 'qemu' (TCG) or 'test' (libvirt's test driver). */
  type: 'kvm' | 'qemu' | 'test';
  /**
   * The NoCloud seed ISO: a volume of the VM's pool on a real hypervisor (where QEMU can read it), a
   * file on libvirt's test driver (whose volumes have no files; the simulator reads the seed from there).
   */
  seed: { volume: string } | { file: string };
  /** File the guest's serial console is copied to (libvirt's virtlogd writes it), for `vm console`. */
  serialLog?: string;
}

/**
 * The libvirt domain of one VM: vCPUs and memory, UEFI firmware (Edgeplane OS boots only through
 * UEFI + GRUB), a virtio disk (a volume in the chosen pool whose qcow2 backing file is the OS image),
 * the NoCloud seed as a read-only virtio disk (the guest finds it by its volume id `cidata`; a SATA
 * cdrom would need drivers the image's initramfs does not load early), a virtio NIC on the chosen
 * network, a serial console (also logged to a file when `serialLog` is set) and an i6300esb watchdog
 * that resets a hung guest. The domain UUID is the guest's DMI product_uuid, which the guest's agent
 * presents as its device UID.
 *
 * Firmware: libvirt picks an OVMF build from the firmware descriptors QEMU ships
 * (/usr/share/qemu/firmware/*.json, "firmware autoselection", libvirt >= 5.2) with a per-VM NVRAM
 * copy it creates; Secure Boot is asked off, since descriptors with enrolled Microsoft keys come
 * first and would refuse an unsigned boot loader. CPU: the host's CPU under KVM
 * (host-passthrough); under TCG every feature the emulator implements (mode "maximum", libvirt >= 7.1).
 * The test driver (libvirt's test:///) models none of these and gets the plain domain.
 *
 * Every reset is a power cycle: a guest reboot, a crash and a watchdog expiry end the domain
 * (on_reboot/on_crash destroy, watchdog action poweroff) and the virt manager starts it again within
 * seconds (VirtManager.drifted, config virt.restartCheckSeconds), so each boot starts from a fresh
 * QEMU process. A warm reset in the same process is what the lab saw hang: under TCG (QEMU 7.2, OVMF
 * 2022.11) a guest's reboot right after writing its other A/B slot sometimes left the firmware
 * spinning in its DXE phase with no output for as long as it was watched, while a fresh start of the
 * same disk booted at once. A fresh process also applies the domain's current definition.
 */
export function domainXml({ vm, type, seed, serialLog }: DomainXmlInput): string {
  const qemu = type !== 'test';
  const firmware = qemu
    ? `
    <firmware><feature enabled='no' name='secure-boot'/></firmware>`
    : '';
  const cpu = type === 'kvm' ? "\n  <cpu mode='host-passthrough' check='none'/>" : type === 'qemu' ? "\n  <cpu mode='maximum' check='none'/>" : '';
  const watchdog = qemu ? "\n    <watchdog model='i6300esb' action='poweroff'/>" : '';
  const log = serialLog ? `\n      <log file='${esc(serialLog)}' append='on'/>` : '';
  return `<domain type='${type}'>
  <name>${esc(vm.domain)}</name>
  <uuid>${esc(vm.uuid)}</uuid>
  <title>${esc(`${vm.cluster}/${vm.vm}`)}</title>
  <metadata>
    <edgeplane:vm xmlns:edgeplane='${EDGEPLANE_XMLNS}' cluster='${esc(vm.cluster)}' vm='${esc(vm.vm)}' host='${esc(vm.hostName)}'/>
  </metadata>
  <memory unit='MiB'>${vm.memoryMiB}</memory>
  <currentMemory unit='MiB'>${vm.memoryMiB}</currentMemory>
  <vcpu placement='static'>${vm.vcpus}</vcpu>
  <os${qemu ? " firmware='efi'" : ''}>
    <type arch='x86_64'${qemu ? " machine='q35'" : ''}>hvm</type>${firmware}
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>${cpu}
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='${esc(vm.storagePool)}' volume='${esc(diskVolume(vm))}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='${'volume' in seed ? 'volume' : 'file'}' device='disk'>
      <driver name='qemu' type='raw'/>
      ${'volume' in seed ? `<source pool='${esc(vm.storagePool)}' volume='${esc(seed.volume)}'/>` : `<source file='${esc(seed.file)}'/>`}
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='${esc(vm.network)}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>${log}
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>${watchdog}
  </devices>
</domain>
`;
}

export interface DomainFacts {
  vcpus?: number;
  memoryMiB?: number;
  pool?: string;
  volume?: string;
  network?: string;
  seedIso?: string;
  /** The seed's volume (in `pool`) when it is one. */
  seedVolume?: string;
  serialLog?: string;
}

/** What a domain XML (virsh dumpxml) says about the parts Edgeplane sets. */
export function readDomainXml(xml: string): DomainFacts {
  const m = (re: RegExp) => re.exec(xml)?.[1];
  const mem = /<memory unit=['"](\w+)['"]>(\d+)<\/memory>/.exec(xml);
  const factor: Record<string, number> = { KiB: 1 / 1024, MiB: 1, GiB: 1024, b: 1 / 1024 / 1024, bytes: 1 / 1024 / 1024 };
  // The seed is the domain's read-only disk.
  const seedDisk = [...xml.matchAll(/<disk\b[^>]*>[\s\S]*?<\/disk>/g)].map((d) => d[0]).find((d) => /<readonly\s*\/>/.test(d));
  return {
    vcpus: Number(m(/<vcpu[^>]*>(\d+)<\/vcpu>/)) || undefined,
    memoryMiB: mem ? Math.round(Number(mem[2]) * (factor[mem[1]] ?? 1)) : undefined,
    pool: m(/<source pool=['"]([^'"]+)['"]/),
    volume: m(/<source pool=['"][^'"]+['"] volume=['"]([^'"]+)['"]/),
    network: m(/<interface type=['"]network['"]>\s*(?:<[^>]*>\s*)*?<source network=['"]([^'"]+)['"]/),
    // On the test driver the seed is the domain's one file-backed disk (the OS disk is a pool volume); older domains had it as a cdrom.
    seedIso: m(/<disk type=['"]file['"] device=['"](?:disk|cdrom)['"]>[\s\S]*?<source file=['"]([^'"]+)['"]/),
    seedVolume: /<source pool=['"][^'"]+['"] volume=['"]([^'"]+)['"]/.exec(seedDisk ?? '')?.[1],
    serialLog: m(/<serial type=['"]pty['"]>\s*<log file=['"]([^'"]+)['"]/),
  };
}
