import { createCipheriv, createHash, createHmac, createPublicKey, type KeyObject, publicEncrypt, randomBytes, constants as rsa } from 'node:crypto';

/**
 * TPM 2.0 credential protection, server side: parsing a key's public area, its Name, and
 * MakeCredential, so the server can check that a key lives in the TPM whose endorsement key it was
 * given (the TPM answers only if it holds both). Hand-written because no maintained npm library does
 * TPM credential protection (the TSS is C); it is the few steps of TCG TPM 2.0 Library Part 1,
 * "Credential Protection" (24), "Protected Storage: Symmetric Encryption / Integrity" (KDFa, 11.4.10.2)
 * and Part 2 structure layouts, and produces what tpm2_makecredential(1) of tpm2-tools 5.x writes,
 * which tpm2_activatecredential(1) reads.
 *
 * The EK is an RSA 2048 key from the TCG default template (tpm2_createek -G rsa): nameAlg SHA-256,
 * symmetric AES-128-CFB. The seed is encrypted to it with RSA-OAEP(SHA-256) and label "IDENTITY\0".
 */

const TPM_ALG = { RSA: 0x0001, SHA256: 0x000b, NULL: 0x0010, ECC: 0x0023 } as const;
const TPM_ECC_NIST_P256 = 0x0003;
/** TPMA_OBJECT bits (Part 2, 8.3). */
export const TPMA = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;
const REQUIRED_ATTRIBUTES = TPMA.fixedTPM | TPMA.fixedParent | TPMA.sensitiveDataOrigin | TPMA.userWithAuth | TPMA.sign;

export class TpmStructureError extends Error {
  override name = 'TpmStructureError';
}

/** A P-256 signing key's public area as the TPM holds it: its coordinates and Name. */
export interface TpmEccSigningKey {
  x: Buffer;
  y: Buffer;
  objectAttributes: number;
  /** nameAlg (2 bytes) || sha256(TPMT_PUBLIC): what the TPM compares ActivateCredential against. */
  name: Buffer;
}

/**
 * Parses a TPM2B_PUBLIC (what tpm2_create -u writes) and accepts only an ECC NIST P-256 signing key
 * made inside the TPM that cannot leave it: nameAlg SHA-256, fixedTPM|fixedParent|
 * sensitiveDataOrigin|userWithAuth|sign, neither restricted nor decrypt.
 */
export function parseTpmSigningKey(tpm2bPublic: Buffer): TpmEccSigningKey {
  const r = reader(tpm2bPublic);
  const size = r.u16();
  if (size !== tpm2bPublic.length - 2) throw new TpmStructureError('TPM2B_PUBLIC size does not match its contents');
  const body = tpm2bPublic.subarray(2);
  if (r.u16() !== TPM_ALG.ECC) throw new TpmStructureError('the key is not an ECC key');
  if (r.u16() !== TPM_ALG.SHA256) throw new TpmStructureError('the key name algorithm is not SHA-256');
  const objectAttributes = r.u32();
  if ((objectAttributes & REQUIRED_ATTRIBUTES) !== REQUIRED_ATTRIBUTES)
    throw new TpmStructureError('the key is not a TPM-generated, non-duplicable signing key (fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign)');
  if (objectAttributes & (TPMA.restricted | TPMA.decrypt)) throw new TpmStructureError('the key is restricted or a decryption key');
  r.sized(); // authPolicy
  if (r.u16() !== TPM_ALG.NULL) throw new TpmStructureError('a signing key has no symmetric algorithm');
  if (r.u16() !== TPM_ALG.NULL) r.u16(); // scheme and, when not NULL, its hash
  if (r.u16() !== TPM_ECC_NIST_P256) throw new TpmStructureError('the key is not on NIST P-256');
  if (r.u16() !== TPM_ALG.NULL) r.u16(); // kdf and its hash
  const x = r.sized();
  const y = r.sized();
  if (x.length !== 32 || y.length !== 32) throw new TpmStructureError('the key point is not 32-byte coordinates');
  if (!r.done()) throw new TpmStructureError('TPM2B_PUBLIC has trailing bytes');
  const name = Buffer.concat([u16(TPM_ALG.SHA256), createHash('sha256').update(body).digest()]);
  return { x, y, objectAttributes, name };
}

/** TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, as tpm2_activatecredential -i reads them (one file). */
export interface MadeCredential {
  /** The file tpm2_makecredential -o writes: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
  blob: Buffer;
}

/**
 * MakeCredential (Part 1, 24.4; Part 3, TPM2_MakeCredential): `credential` (at most 32 bytes) can be
 * recovered only by the TPM holding the private part of `ek` and a loaded object named `name`.
 * `seed` is for tests; by default a fresh random 32 bytes.
 */
export function makeCredential(ekPublicKeyPem: string | KeyObject, name: Buffer, credential: Buffer, seed: Buffer = randomBytes(32)): MadeCredential {
  const ek = typeof ekPublicKeyPem === 'string' ? createPublicKey(ekPublicKeyPem) : ekPublicKeyPem;
  if (ek.asymmetricKeyType !== 'rsa' || ek.asymmetricKeyDetails?.modulusLength !== 2048)
    throw new TpmStructureError('the endorsement key is not RSA 2048 (credential activation needs the RSA EK)');
  if (credential.length === 0 || credential.length > 32) throw new TpmStructureError('a credential is 1 to 32 bytes');
  const encryptedSeed = publicEncrypt({ key: ek, padding: rsa.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0') }, seed);
  // Part 1, 24.4: the credential as a TPM2B_DIGEST, encrypted with AES-128-CFB (zero IV) under
  // KDFa(seed, "STORAGE", Name), then an outer HMAC under KDFa(seed, "INTEGRITY") over encIdentity || Name.
  const symKey = kdfa(seed, 'STORAGE', name, Buffer.alloc(0), 128);
  const cipher = createCipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(Buffer.concat([u16(credential.length), credential])), cipher.final()]);
  const hmacKey = kdfa(seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256);
  const outerHmac = createHmac('sha256', hmacKey).update(encIdentity).update(name).digest();
  const idObject = Buffer.concat([u16(outerHmac.length), outerHmac, encIdentity]);
  const blob = Buffer.concat([u32(0xbadcc0de), u32(1), u16(idObject.length), idObject, u16(encryptedSeed.length), encryptedSeed]);
  return { blob };
}

/** KDFa with SHA-256 (Part 1, 11.4.10.2): SP 800-108 counter-mode HMAC; the label ends with a NUL. */
export function kdfa(key: Buffer, label: string, contextU: Buffer, contextV: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 1; out.length * 32 * 8 < bits; i++)
    out.push(
      createHmac('sha256', key)
        .update(u32(i))
        .update(Buffer.from(`${label}\0`))
        .update(contextU)
        .update(contextV)
        .update(u32(bits))
        .digest(),
    );
  return Buffer.concat(out).subarray(0, bits / 8);
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

function reader(buf: Buffer) {
  let at = 0;
  const need = (n: number) => {
    if (at + n > buf.length) throw new TpmStructureError('TPM2B_PUBLIC is truncated');
  };
  return {
    u16() {
      need(2);
      const v = buf.readUInt16BE(at);
      at += 2;
      return v;
    },
    u32() {
      need(4);
      const v = buf.readUInt32BE(at);
      at += 4;
      return v;
    },
    sized() {
      const n = this.u16();
      need(n);
      const v = buf.subarray(at, at + n);
      at += n;
      return v;
    },
    done: () => at === buf.length,
  };
}
