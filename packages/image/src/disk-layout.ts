/** GPT partition type GUIDs. */
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export const MiB = 1024 * 1024;

export interface Partition {
  /** GPT partition name: how the initramfs, the init scripts and the agent find it. */
  name: 'esp' | 'root-a' | 'root-b' | 'data' | 'recovery';
  number: number;
  type: string;
  startMiB: number;
  sizeMiB: number;
}

export interface DiskLayout {
  partitions: Partition[];
  /** Whole disk, including 1 MiB before the first partition and 1 MiB for the backup GPT. */
  sizeMiB: number;
}

export interface LayoutSizes {
  espMiB?: number;
  slotMiB?: number;
  dataMiB?: number;
}

/**
 * The installer disk: 1 esp (FAT: GRUB, grub.cfg, grubenv), 2 root-a and 3 root-b (ext4, one OS
 * image each), 4 data (ext4: the device's writable state), 5 recovery (ext4: the installed image,
 * never updated; booted when neither A nor B can be loaded). Partition numbers are fixed: the boot
 * loader finds the slots by number (see packages/agent/boot/grub.cfg.template). On the disk, data
 * comes last (after recovery), so that on first boot it grows to the end of whatever disk it was
 * written to.
 */
export function diskLayout(sizes: LayoutSizes = {}): DiskLayout {
  const want: [Partition['name'], string, number][] = [
    ['esp', ESP_TYPE, sizes.espMiB ?? 64],
    ['root-a', LINUX_TYPE, sizes.slotMiB ?? 512],
    ['root-b', LINUX_TYPE, sizes.slotMiB ?? 512],
    ['data', LINUX_TYPE, sizes.dataMiB ?? 1024],
    ['recovery', LINUX_TYPE, sizes.slotMiB ?? 512],
  ];
  const physical: Partition['name'][] = ['esp', 'root-a', 'root-b', 'recovery', 'data'];
  const starts = new Map<string, number>();
  let start = 1;
  for (const name of physical) {
    starts.set(name, start);
    start += want.find((w) => w[0] === name)![2];
  }
  const partitions = want.map(([name, type, sizeMiB], i) => ({ name, number: i + 1, type, startMiB: starts.get(name)!, sizeMiB }));
  return { partitions, sizeMiB: start + 1 };
}

/** The sfdisk script for a layout (sectors of 512 bytes). */
export function sfdiskScript(layout: DiskLayout): string {
  const lines = ['label: gpt', 'unit: sectors', ''];
  for (const p of layout.partitions) lines.push(`start=${p.startMiB * 2048}, size=${p.sizeMiB * 2048}, type=${p.type}, name="${p.name}"`);
  return `${lines.join('\n')}\n`;
}
