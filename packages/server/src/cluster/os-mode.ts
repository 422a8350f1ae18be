import { EdgeplaneError, type OsMode, osModeOf, profileOsMode } from '@edgeplane/protocol';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';

/**
 * Who manages a host's OS, and which profiles fit it (docs/kubernetes.md "Agent mode"). A host
 * reports its OS mode in its inventory: `managed` (Edgeplane's A/B slots) or `unmanaged` (it keeps
 * its own OS). A profile with an os layer is for managed hosts: the agent writes its image into the
 * passive slot, and the image carries the distribution. A profile without one is for unmanaged
 * hosts: the agent installs the distribution from the profile's artifact and never touches the OS.
 * Mixing them cannot work either way (an unmanaged host has no slot to write an image into; a managed
 * host's read-only image would get binaries installed beside it that the next repave drops), so the
 * server refuses the pairing before anything is written.
 */
export function hostOsMode(host: { status: string }): OsMode {
  const inventory = (JSON.parse(host.status) as { inventory?: { osMode?: OsMode } }).inventory;
  return osModeOf(inventory);
}

/** Refuses a cluster node (or a host OS profile's host) whose OS mode the profile does not fit. */
export function checkHostOsMode(host: { name: string; status: string }, profile: PinnedProfileSpec, ref: { name: string; revision: number }): void {
  const osMode = hostOsMode(host);
  const wanted = profileOsMode(profile);
  if (osMode === wanted) return;
  const why =
    wanted === 'managed'
      ? `host "${host.name}" keeps its own OS (unmanaged: no A/B slots), but profile "${ref.name}" revision ${ref.revision} has an os layer; use a profile without an os layer whose kubernetes layer names an artifact`
      : `host "${host.name}" runs Edgeplane's A/B OS (managed), but profile "${ref.name}" revision ${ref.revision} has no os layer (it is for hosts that keep their own OS); use a profile with an os layer whose image carries the distribution`;
  throw new EdgeplaneError('HostOsModeMismatch', why, { host: host.name, osMode, profileOsMode: wanted, profile: ref.name, revision: ref.revision });
}

/**
 * The os layer of a profile that must have one: a host OS profile (it manages nothing else) and a
 * virtualized cluster (its VMs boot the profile's OS image).
 */
export function requireOsLayer(
  profile: PinnedProfileSpec,
  ref: { name: string; revision: number },
  what: string,
): NonNullable<PinnedProfileSpec['layers']['os']> {
  const os = profile.layers.os;
  if (!os)
    throw new EdgeplaneError(
      'HostOsModeMismatch',
      `profile "${ref.name}" revision ${ref.revision} has no os layer (it is for hosts that keep their own OS); ${what} needs an OS image`,
      { profile: ref.name, revision: ref.revision, profileOsMode: 'unmanaged' },
    );
  return os;
}

/**
 * A cluster moving to another profile revision: on a managed OS the distribution binary is in the
 * OS image, so a Kubernetes distribution or version change that keeps the same image can never run
 * (the node would keep running the image's binary). Refused before anything is written; the change
 * is an image change (a repave onto an image that carries the version). Profiles without an os layer
 * change versions through their artifact: the agent installs the new binary and restarts.
 */
export function checkKubernetesChange(from: PinnedProfileSpec | undefined, to: PinnedProfileSpec, toRef: { name: string; revision: number }): void {
  const a = from?.layers.kubernetes;
  const b = to.layers.kubernetes;
  if (!a || !b || !from?.layers.os || !to.layers.os) return;
  if (a.distribution === b.distribution && a.version === b.version) return;
  if (from.layers.os.digest !== to.layers.os.digest) return;
  throw new EdgeplaneError(
    'KubernetesVersionNotInImage',
    `profile "${toRef.name}" revision ${toRef.revision} asks for ${b.distribution} ${b.version} on the same OS image as ${a.distribution} ${a.version} (${to.layers.os.digest}); the image carries the distribution's binary, so a version change is an image change: point the profile's os.image at an image that carries ${b.version}`,
    { profile: toRef.name, revision: toRef.revision, image: to.layers.os.image, digest: to.layers.os.digest, carries: `${a.distribution} ${a.version}` },
  );
}
