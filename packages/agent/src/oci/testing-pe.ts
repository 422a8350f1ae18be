/**
 * For tests: the headers of a PE32+ kernel (an EFI-stub vmlinuz), with or without a certificate
 * table (what kernel-signature.ts reads). Every byte is below 0x80, so it survives being written as a
 * string into an image's files.
 */
export function peKernelHead(signed: boolean): Buffer {
  const b = Buffer.alloc(256);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x40, 0x3c); // e_lfanew
  b.write('PE\0\0', 0x40, 'latin1');
  b.writeUInt16LE(0x20b, 0x40 + 24); // PE32+
  b.writeUInt32LE(16, 0x40 + 24 + 108); // NumberOfRvaAndSizes
  if (signed) b.writeUInt32LE(0x48, 0x40 + 24 + 112 + 4 * 8 + 4); // the certificate table's size
  return b;
}
