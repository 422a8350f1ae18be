import type { DeviceFiles } from './files.js';

/**
 * The UEFI global variable SecureBoot (EFI_GLOBAL_VARIABLE GUID 8be4df61-93ca-11d2-aa0d-00e098032b8c,
 * UEFI specification "Globally Defined Variables") as efivarfs shows it: 4 bytes of attributes, then
 * the value, 1 when the firmware enforces Secure Boot (Linux Documentation/filesystems/efivarfs.rst).
 */
export const SECURE_BOOT_EFIVAR = '/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c';

/** Whether the machine booted with Secure Boot enforced; false on BIOS machines and without efivarfs. */
export async function secureBootEnforced(files: DeviceFiles): Promise<boolean> {
  const value = await files.read(SECURE_BOOT_EFIVAR).catch(() => undefined);
  return !!value && value.length >= 5 && value[4] === 1;
}
