import { OciLayoutSource } from './layout.js';
import type { PullSource } from './pull.js';
import { parseImageReference } from './reference.js';
import { RegistryClient } from './registry-client.js';

export { BlobStore, sha256Digest } from './blob-store.js';
export * as delta from './delta/index.js';
export { extractImage } from './extract.js';
export { type WriteImageOptions, type WrittenImage, writeOciImage } from './image-writer.js';
export { peHasSignature, slotKernelSigned } from './kernel-signature.js';
export { OciLayoutSource } from './layout.js';
export { IMAGE_INFO_PATH, ImageInfo, type OsImageOptions, readImageInfo, writeOsImage } from './os-image.js';
export { type PulledImage, type PullOptions, type PullSource, pullImage } from './pull.js';
export { type ImageSource, parseImageReference } from './reference.js';
export { parseBearerChallenge, RegistryClient } from './registry-client.js';
export { MEDIA, OciError, ociArch } from './types.js';

/** The pull source for an image reference: a registry client, or an OCI layout for `oci:<dir>`. */
export function sourceFor(image: string, options: { insecure?: boolean; userAgent?: string } = {}): PullSource {
  const src = parseImageReference(image);
  if (src.kind === 'layout') {
    const layout = new OciLayoutSource(src.dir);
    return { getManifest: (d) => layout.getManifest(d), openBlob: (d, o) => layout.openBlob(d, o) };
  }
  // Like Docker, a registry on the loopback interface is plain HTTP unless it says otherwise.
  const insecure = options.insecure ?? isLoopback(src.registry);
  return new RegistryClient({ registry: src.registry, repository: src.repository, insecure, userAgent: options.userAgent });
}

/** host[:port] on the loopback interface (localhost, 127.0.0.0/8, [::1]). */
export function isLoopback(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.split(':')[0];
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
