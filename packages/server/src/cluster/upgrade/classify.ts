import { type ChangeClass, type HostSpec, rulesFor } from '@edgeplane/protocol';
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
 *                     change (a new artifact: the agent installs its binary, restarts, checks the version).
 *                     Config keys the distribution reads only when a node initializes or joins (kubeadm:
 *                     the rules' changeEffect 'not-applied') restart nothing: the change is a no-op for
 *                     running nodes, and its reason says so (nodes joining later get the new value).
 *  - config-reload:   only cluster add-ons change (applied through the API, no node disruption)
 *  - no-op:           nothing the node runs changes
 */
export function classify(from: HostSpec | undefined, to: HostSpec): { change: ChangeClass; reasons: string[] } {
  const a = baseSpec(from) ?? {};
  const b = baseSpec(to) ?? {};
  if (a.os?.digest !== b.os?.digest) return { change: 'repave', reasons: ['os.digest', ...kubernetesReasons(a, b)] };
  const k = kubernetesReasons(a, b).flatMap((r) => (r === 'kubernetes.config' ? configReasons(a, b) : [r]));
  // Where the binary comes from: an installed artifact (agent mode) or the OS image.
  const fromArtifact = !!b.kubernetes?.artifact;
  if (!fromArtifact && k.some((r) => BINARY_FIELDS.some((f) => r === `kubernetes.${f}`))) return { change: 'reboot', reasons: k };
  if (k.some((r) => !r.endsWith(NOT_APPLIED))) return { change: 'service-restart', reasons: k };
  const rest = Object.keys({ ...a, ...b }).filter((key) => key !== 'os' && key !== 'kubernetes' && !same(a[key as keyof HostSpec], b[key as keyof HostSpec]));
  if (rest.length > 0) return { change: 'config-reload', reasons: rest };
  if (!same(a.os, b.os)) return { change: 'no-op', reasons: ['os.image (same digest)', ...k] };
  return { change: 'no-op', reasons: k };
}

const NOT_APPLIED = ' (not applied to running nodes: read at init/join)';

/** The changed config keys, each marked when the distribution's rules say running nodes never read it. */
function configReasons(a: HostSpec, b: HostSpec): string[] {
  const ca = (a.kubernetes?.config ?? {}) as Record<string, unknown>;
  const cb = (b.kubernetes?.config ?? {}) as Record<string, unknown>;
  const rules = b.kubernetes ? rulesFor(b.kubernetes.distribution) : undefined;
  return [...new Set([...Object.keys(ca), ...Object.keys(cb)])]
    .filter((key) => !same(ca[key], cb[key]))
    .sort()
    .map((key) => `kubernetes.config.${key}${rules?.changeEffect(key) === 'not-applied' ? NOT_APPLIED : ''}`);
}

function kubernetesReasons(a: HostSpec, b: HostSpec): string[] {
  const ka = (a.kubernetes ?? {}) as Record<string, unknown>;
  const kb = (b.kubernetes ?? {}) as Record<string, unknown>;
  return [...new Set([...Object.keys(ka), ...Object.keys(kb)])]
    .filter((f) => f !== 'token' && !same(ka[f], kb[f]))
    .sort()
    .map((f) => `kubernetes.${f}`);
}
