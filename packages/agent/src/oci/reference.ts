import { OciError } from './types.js';

/** Where an image comes from: a registry (OCI distribution API) or an OCI layout directory (air-gapped). */
export type ImageSource = { kind: 'registry'; registry: string; repository: string; tag?: string } | { kind: 'layout'; dir: string; tag?: string };

const DOCKER_HUB = 'registry-1.docker.io';

/**
 * Parses an image reference as written in a profile:
 *  - `host[:port]/repo/path[:tag][@sha256:...]` (a registry; Docker Hub when the first part is not a host),
 *  - `oci:<dir>[:tag]` (an OCI image layout directory, e.g. on a USB stick or a local mirror).
 * The digest part, if any, is ignored here: the host spec carries the pinned digest separately.
 */
export function parseImageReference(ref: string): ImageSource {
  if (ref.startsWith('oci:')) {
    const rest = ref.slice(4);
    // A tag follows the last ':' only when it is after the last '/', so paths with ':' in a parent dir still work.
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/') && colon > 0) return { kind: 'layout', dir: rest.slice(0, colon), tag: rest.slice(colon + 1) };
    if (!rest) throw new OciError('BadReference', `image reference ${ref} names no layout directory`);
    return { kind: 'layout', dir: rest };
  }
  const withoutDigest = ref.split('@')[0];
  const slash = withoutDigest.indexOf('/');
  let registry = DOCKER_HUB;
  let path = withoutDigest;
  if (slash > 0) {
    const first = withoutDigest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = first;
      path = withoutDigest.slice(slash + 1);
    }
  }
  const colon = path.lastIndexOf(':');
  const tag = colon > path.lastIndexOf('/') ? path.slice(colon + 1) : undefined;
  let repository = tag !== undefined ? path.slice(0, colon) : path;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository))
    throw new OciError('BadReference', `image reference ${ref}: "${repository}" is not a valid repository name`);
  return { kind: 'registry', registry, repository, tag };
}
