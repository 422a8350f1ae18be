import { lstat, open, readlink, realpath } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';

/**
 * Whether the first bytes of an EFI PE/COFF image (a kernel with its EFI stub) carry an Authenticode
 * signature: a non-empty certificate table, data directory 4 of the PE32+ optional header (Microsoft
 * PE format, "Optional Header Data Directories"). Under Secure Boot shim and GRUB load only a signed
 * kernel whose signer they trust (Debian's linux-image-*-amd64 is signed by Debian's Secure Boot CA);
 * this says only that there is a signature, not whose (`sbverify --list` shows that).
 */
export function peHasSignature(head: Buffer): boolean {
  if (head.length < 0x40 || head.readUInt16LE(0) !== 0x5a4d) return false; // "MZ": not a PE image at all
  const pe = head.readUInt32LE(0x3c);
  if (pe + 24 + 152 > head.length || head.readUInt32LE(pe) !== 0x4550) return false; // "PE\0\0"
  const optional = pe + 24;
  if (head.readUInt16LE(optional) !== 0x20b) return false; // PE32+
  const directories = head.readUInt32LE(optional + 108);
  if (directories <= 4) return false;
  return head.readUInt32LE(optional + 112 + 4 * 8 + 4) > 0;
}

/** The PE headers fit in the first 4 KiB of an x86-64 kernel. */
const HEAD_BYTES = 4096;

/**
 * Whether the kernel the boot loader starts from a slot (/boot/vmlinuz of its root filesystem, as
 * boot/grub.cfg.template loads it) carries a signature; undefined when the tree has no such kernel
 * (images without a kernel, e.g. the simulator's). Symbolic links are followed inside `rootfs` only
 * (Debian's /boot/vmlinuz is a link to vmlinuz-<release>), as GRUB follows them on the slot.
 */
export async function slotKernelSigned(rootfs: string): Promise<boolean | undefined> {
  let path = '/boot/vmlinuz';
  for (let hops = 0; hops < 8; hops++) {
    const st = await lstat(join(rootfs, path)).catch(() => undefined);
    if (!st) return undefined;
    if (st.isSymbolicLink()) {
      const target = await readlink(join(rootfs, path));
      path = normalize(target.startsWith('/') ? target : join(dirname(path), target));
      continue;
    }
    if (!st.isFile()) return undefined;
    // A directory on the way may itself be a link out of the tree: read only what resolves inside it.
    const [top, real] = await Promise.all([realpath(rootfs), realpath(join(rootfs, path))]);
    if (!real.startsWith(top + sep)) return undefined;
    const file = await open(real, 'r');
    try {
      const head = Buffer.alloc(HEAD_BYTES);
      const { bytesRead } = await file.read(head, 0, HEAD_BYTES, 0);
      return peHasSignature(head.subarray(0, bytesRead));
    } finally {
      await file.close();
    }
  }
  return undefined;
}
