import type { ChangeClass, HostSpec } from '@edgeplane/protocol';
import { stableJson } from '../render.js';

/** The rolling-upgrade fields the controller adds to a node's spec; not part of what the node "runs". */
export function baseSpec(spec: HostSpec | undefined): HostSpec | undefined {
  if (!spec) return undefined;
  const { maintenance: _m, ...rest } = spec;
  if (rest.os) {
    const { activate: _a, ...os } = rest.os;
    rest.os = os;
  }
  return rest;
}

const same = (a: unknown, b: unknown) => stableJson(a) === stableJson(b);

/** Kubernetes fields whose change needs another distribution binary. */
const BINARY_FIELDS = ['distribution', 'version', 'artifact'] as const;

/**
 * How a node gets from its current host spec to the new one (docs/architecture.md "Cluster upgrades"):
 *  - repave:          the OS image digest changes (stage, cordon, drain, slot switch, trial boot)
 *  - reboot:          the Kubernetes distribution or version changes on the same image (cordon, drain,
 *                     reboot). The image carries the binary, so the API refuses such a revision
 *                     (os-mode.ts checkKubernetesChange: KubernetesVersionNotInImage); an upgrade
 *                     planned before that check fails its health gate, as the node keeps reporting
 *                     the version its image carries.
 *  - service-restart: the Kubernetes configuration changes (config rewritten, service restarted, one
 *                     node at a time); on a host that keeps its own OS also a distribution or version
 *                     change (a new artifact: the agent installs its binary, restarts, checks the version)
 *  - config-reload:   only cluster add-ons change (applied through the API, no node disruption)
 *  - no-op:           nothing the node runs changes
 */
export function classify(from: HostSpec | undefined, to: HostSpec): { change: ChangeClass; reasons: string[] } {
  const a = baseSpec(from) ?? {};
  const b = baseSpec(to) ?? {};
  if (a.os?.digest !== b.os?.digest) return { change: 'repave', reasons: ['os.digest', ...kubernetesReasons(a, b)] };
  const k = kubernetesReasons(a, b);
  // Where the binary comes from: an installed artifact (agent mode) or the OS image.
  const fromArtifact = !!b.kubernetes?.artifact;
  if (!fromArtifact && k.some((r) => BINARY_FIELDS.some((f) => r === `kubernetes.${f}`))) return { change: 'reboot', reasons: k };
  if (k.length > 0) return { change: 'service-restart', reasons: k };
  const rest = Object.keys({ ...a, ...b }).filter((key) => key !== 'os' && key !== 'kubernetes' && !same(a[key as keyof HostSpec], b[key as keyof HostSpec]));
  if (rest.length > 0) return { change: 'config-reload', reasons: rest };
  if (!same(a.os, b.os)) return { change: 'no-op', reasons: ['os.image (same digest)'] };
  return { change: 'no-op', reasons: [] };
}

function kubernetesReasons(a: HostSpec, b: HostSpec): string[] {
  const ka = (a.kubernetes ?? {}) as Record<string, unknown>;
  const kb = (b.kubernetes ?? {}) as Record<string, unknown>;
  return [...new Set([...Object.keys(ka), ...Object.keys(kb)])]
    .filter((f) => f !== 'token' && !same(ka[f], kb[f]))
    .sort()
    .map((f) => `kubernetes.${f}`);
}
