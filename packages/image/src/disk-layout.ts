/**
 * The installer disk's GPT layout (esp, root-a, root-b, data, recovery). It lives in the agent
 * (device/linux/os-disk.ts), whose virt manager writes the same disk for an appliance's VMs.
 */
export { type DiskLayout, diskLayout, type LayoutSizes, MiB, type Partition, partitionMiB, sfdiskScript } from '@edgeplane/agent';
