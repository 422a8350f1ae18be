import type { VirtVmSpec } from '@edgeplane/protocol';

/** Namespace of the metadata element Edgeplane puts into the domains it manages. */
export const EDGEPLANE_XMLNS = 'https://edgeplane.io/xmlns/libvirt/vm/1';
/** Prefix of every domain (and its disk volume) the virt manager owns; others are left alone. */
export const DOMAIN_PREFIX = 'ep-';

const esc = (s: string | number) => String(s).replace(/[&<>'"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', "'": '&apos;', '"': '&quot;' })[c]!);

export const diskVolume = (vm: Pick<VirtVmSpec, 'domain'>) => `${vm.domain}.qcow2`;
/** Base volume holding the OS image, shared by every VM disk in a pool (qcow2 backing file). */
export const baseVolume = (vm: Pick<VirtVmSpec, 'image'>) => `ep-base-${vm.image.digest.replace(/^sha256:/, '').slice(0, 16)}.qcow2`;

export interface DomainXmlInput {
  vm: VirtVmSpec;
  /** 'kvm' (hardware), 'qemu' (TCG) or 'test' (libvirt's test driver). */
  type: 'kvm' | 'qemu' | 'test';
  /** Path of the NoCloud seed ISO on the appliance. */
  seedIso: string;
}

/**
 * The libvirt domain of one VM: vCPUs and memory, a virtio disk (a volume in the chosen pool whose
 * qcow2 backing file is the OS image), the NoCloud seed as a read-only cdrom (cloud-init finds it
 * by its volume id `cidata`), a virtio NIC on the chosen network and a serial console. The domain
 * UUID is the guest's DMI product_uuid, which the guest's agent presents as its device UID.
 */
export function domainXml({ vm, type, seedIso }: DomainXmlInput): string {
  const qemu = type !== 'test';
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
  <os>
    <type arch='x86_64'${qemu ? " machine='q35'" : ''}>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>restart</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='${esc(vm.storagePool)}' volume='${esc(diskVolume(vm))}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${esc(seedIso)}'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='${esc(vm.network)}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
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
}

/** What a domain XML (virsh dumpxml) says about the parts Edgeplane sets. */
export function readDomainXml(xml: string): DomainFacts {
  const m = (re: RegExp) => re.exec(xml)?.[1];
  const mem = /<memory unit=['"](\w+)['"]>(\d+)<\/memory>/.exec(xml);
  const factor: Record<string, number> = { KiB: 1 / 1024, MiB: 1, GiB: 1024, b: 1 / 1024 / 1024, bytes: 1 / 1024 / 1024 };
  return {
    vcpus: Number(m(/<vcpu[^>]*>(\d+)<\/vcpu>/)) || undefined,
    memoryMiB: mem ? Math.round(Number(mem[2]) * (factor[mem[1]] ?? 1)) : undefined,
    pool: m(/<source pool=['"]([^'"]+)['"]/),
    volume: m(/<source pool=['"][^'"]+['"] volume=['"]([^'"]+)['"]/),
    network: m(/<interface type=['"]network['"]>\s*(?:<[^>]*>\s*)*?<source network=['"]([^'"]+)['"]/),
    seedIso: m(/device=['"]cdrom['"]>[\s\S]*?<source file=['"]([^'"]+)['"]/),
  };
}
