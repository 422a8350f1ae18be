import { type ClusterProfileSpec, EdgeplaneError, KUBERNETES_ANNOTATION, parseKubernetesAnnotation } from '@edgeplane/protocol';
import type { ImageDigests } from '../resource/context.js';
import type { PinnedProfileSpec } from './cluster-profile.service.js';

/**
 * Pins a profile's images to their manifest digests: the os layer's image (managed OS) and the
 * kubernetes layer's artifact (agent mode, no os layer). Each image that records the Kubernetes it
 * carries (the KUBERNETES_ANNOTATION annotation) must carry what the kubernetes layer asks for: on a
 * managed OS the distribution binary is in the image, so a profile asking for another version could
 * never run (KubernetesVersionNotInImage). An image that records nothing is taken at its word
 * (images built before the annotation); the agent and the health gate still check the version the
 * node reports.
 */
export async function pinImages(spec: ClusterProfileSpec, images: ImageDigests): Promise<PinnedProfileSpec> {
  const { os, kubernetes } = spec.layers;
  const layers: PinnedProfileSpec['layers'] = { ...spec.layers, os: undefined, kubernetes: undefined };
  if (os) {
    const resolved = await images.resolveImage(os.image, { insecure: os.insecure });
    checkCarries(spec, 'layers.os.image', os.image, resolved.annotations);
    layers.os = { ...os, digest: resolved.digest };
  }
  if (kubernetes) {
    const artifact = kubernetes.artifact;
    if (artifact) {
      const resolved = await images.resolveImage(artifact.image, { insecure: artifact.insecure });
      checkCarries(spec, 'layers.kubernetes.artifact.image', artifact.image, resolved.annotations);
      layers.kubernetes = { ...kubernetes, artifact: { ...artifact, digest: resolved.digest } };
    } else layers.kubernetes = { ...kubernetes, artifact: undefined };
  }
  if (!layers.os) delete layers.os;
  if (!layers.kubernetes) delete layers.kubernetes;
  else if (!layers.kubernetes.artifact) delete layers.kubernetes.artifact;
  return { ...spec, layers };
}

function checkCarries(spec: ClusterProfileSpec, path: string, image: string, annotations: Record<string, string>): void {
  const k = spec.layers.kubernetes;
  const raw = annotations[KUBERNETES_ANNOTATION];
  if (!k || raw === undefined) return;
  const carries = parseKubernetesAnnotation(raw);
  // The distribution suffix (+k3s1) is part of what the binary is: compare whole versions.
  const same = carries && carries.distribution === k.distribution && normalize(carries.version) === normalize(k.version);
  if (!same)
    throw new EdgeplaneError(
      'KubernetesVersionNotInImage',
      `${path} "${image}" carries ${carries ? `${carries.distribution} ${carries.version}` : `an unreadable ${KUBERNETES_ANNOTATION} record ("${raw}")`}, not ${k.distribution} ${k.version}: point the profile at an image that carries ${k.version}`,
      { image, carries: raw, distribution: k.distribution, version: k.version, path },
    );
}

function normalize(version: string): string {
  return version.startsWith('v') ? version : `v${version}`;
}
