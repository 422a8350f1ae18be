import { z } from 'zod';
import { Addon, Digest, Distribution, HealthChecks } from './host-spec.js';
import { cniIsBundled, rulesFor } from './kubernetes/index.js';
import { Name, resourceInputSchema, resourceSchema, Timestamp } from './meta.js';

/**
 * Kubernetes versions each distribution driver supports. Shared by the server (profile validation)
 * and the agent drivers, so both agree on what a profile may ask for.
 */
export const SUPPORTED_KUBERNETES_MINORS: Record<Distribution, string[]> = {
  k3s: ['1.28', '1.29', '1.30', '1.31'],
  rke2: ['1.28', '1.29', '1.30', '1.31'],
  kubeadm: ['1.28', '1.29', '1.30', '1.31'],
};

/** Version format per distribution, as each project tags its releases. */
export const KUBERNETES_VERSION_FORMATS: Record<Distribution, { pattern: RegExp; example: string }> = {
  k3s: { pattern: /^v(\d+)\.(\d+)\.(\d+)\+k3s\d+$/, example: 'v1.30.4+k3s1' },
  rke2: { pattern: /^v(\d+)\.(\d+)\.(\d+)\+rke2r\d+$/, example: 'v1.30.4+rke2r1' },
  kubeadm: { pattern: /^v(\d+)\.(\d+)\.(\d+)$/, example: 'v1.30.4' },
};

/** Why a distribution/version pair is not acceptable, or undefined when it is. */
export function kubernetesVersionProblem(distribution: Distribution, version: string): { code: 'format' | 'unsupported'; message: string } | undefined {
  const f = KUBERNETES_VERSION_FORMATS[distribution];
  const m = version.match(f.pattern);
  if (!m) return { code: 'format', message: `${distribution} version "${version}" is not in the form ${f.example}` };
  const minor = `${m[1]}.${m[2]}`;
  const supported = SUPPORTED_KUBERNETES_MINORS[distribution];
  if (!supported.includes(minor))
    return { code: 'unsupported', message: `${distribution} ${version}: Kubernetes ${minor} is not supported (supported: ${supported.join(', ')})` };
  return undefined;
}

/** `vX.Y.Z` without the distribution suffix, for comparing what a node reports with what was asked. */
export function kubernetesVersionCore(version: string): string {
  return version.replace(/\+.*$/, '');
}

const Values = z.record(z.string(), z.unknown());
export const VariableName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be letters, digits and "_", not starting with a digit');

export const ProfileVariable = z
  .object({
    name: VariableName,
    default: z.string().max(4096).optional(),
    description: z.string().max(1024).optional(),
    required: z.boolean().optional(),
  })
  .strict();
export type ProfileVariable = z.infer<typeof ProfileVariable>;

/** OCI reference with a registry host: registry.local:5000/edge/os:1.2 or ...@sha256:<digest>. */
const ImageReference = z
  .string()
  .min(1)
  .max(512)
  .regex(
    /^[a-zA-Z0-9.-]+(:\d+)?\/[a-z0-9._/-]+(:[A-Za-z0-9_.-]{1,128})?(@sha256:[a-f0-9]{64})?$/,
    'must be <registry>[:port]/<repository>[:tag][@sha256:<digest>]',
  );

export const OsLayer = z
  .object({
    image: ImageReference,
    /** Plain-HTTP registry (lab or air-gapped mirror). Loopback registries are always plain HTTP. */
    insecure: z.boolean().optional(),
  })
  .strict();

/**
 * The OCI annotation (manifest annotations, or the image config's labels) with which an OS image or
 * a distribution artifact records the Kubernetes it carries: `<distribution> <version>`, e.g.
 * `k3s v1.30.4+k3s1`. The server reads it when it pins the image and refuses a profile whose
 * kubernetes layer asks for another distribution or version (KubernetesVersionNotInImage).
 */
export const KUBERNETES_ANNOTATION = 'io.edgeplane.kubernetes';

/** Parses a KUBERNETES_ANNOTATION value; undefined when it is not `<distribution> <version>`. */
export function parseKubernetesAnnotation(value: string | undefined): { distribution: Distribution; version: string } | undefined {
  const m = value?.trim().match(/^(k3s|rke2|kubeadm)\s+(\S+)$/);
  return m ? { distribution: m[1] as Distribution, version: m[2] } : undefined;
}

/**
 * Where the distribution comes from on hosts that keep their own OS (agent mode): an OCI artifact
 * holding the distribution's release files (docs/kubernetes.md "Agent mode"). The server pins a tag
 * to its manifest digest like the os layer's image; the agent pulls it by that digest.
 */
export const KubernetesArtifact = z
  .object({
    image: ImageReference,
    /** Plain-HTTP registry (lab or air-gapped mirror). Loopback registries are always plain HTTP. */
    insecure: z.boolean().optional(),
  })
  .strict();

export const KubernetesLayer = z
  .object({
    distribution: Distribution,
    version: z.string().min(1).max(64),
    /** Distribution configuration values, merged into the config file the driver writes. */
    config: Values.default({}),
    /**
     * Profiles without an os layer only (hosts with an unmanaged OS): the artifact the agent installs
     * the distribution from. With an os layer the OS image carries the distribution.
     */
    artifact: KubernetesArtifact.optional(),
  })
  .strict();

export const NetworkLayer = z.object({ cni: z.string().min(1).max(64), version: z.string().max(64).optional(), values: Values.default({}) }).strict();

export const ClusterProfileSpec = z
  .object({
    description: z.string().max(1024).optional(),
    layers: z
      .object({
        /**
         * The A/B OS image of hosts with a managed OS. Absent = a profile for hosts that keep their
         * own OS (inventory osMode `unmanaged`): it needs a kubernetes layer with an artifact.
         */
        os: OsLayer.optional(),
        /**
         * Absent = a host OS profile: only the OS (plus health checks and variables), for hosts that
         * run no Kubernetes (EdgeHost spec.osProfile). Clusters refuse such a profile (ProfileHasNoKubernetes).
         */
        kubernetes: KubernetesLayer.optional(),
        network: NetworkLayer.optional(),
        /**
         * Not supported: refused with a message. A CSI driver (local-path, Longhorn, a vendor's) is
         * an add-on like any other; a separate layer only named one and nothing installed it.
         */
        storage: z.unknown().optional(),
        addons: z.array(Addon).max(100).default([]),
      })
      .strict(),
    /** Values clusters fill in; referenced as ${var.NAME} in string values of the layers. */
    variables: z.array(ProfileVariable).max(100).default([]),
    /** Checks every node runs after a trial boot of a new OS image (see HealthCheck in host-spec.ts). */
    healthChecks: HealthChecks.optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const k = spec.layers.kubernetes;
    const problem = k ? kubernetesVersionProblem(k.distribution, k.version) : undefined;
    if (problem?.code === 'format') ctx.addIssue({ code: 'custom', path: ['layers', 'kubernetes', 'version'], message: problem.message });
    const seen = new Set<string>();
    spec.variables.forEach((v, i) => {
      if (seen.has(v.name)) ctx.addIssue({ code: 'custom', path: ['variables', i, 'name'], message: `variable "${v.name}" is declared twice` });
      seen.add(v.name);
    });
    // Network, storage and add-ons live in a Kubernetes cluster; an OS-only profile cannot carry them.
    const needsK8s = (['network', 'storage', 'addons'] as const).filter((l) => (l === 'addons' ? spec.layers.addons.length > 0 : spec.layers[l] !== undefined));
    if (!k)
      for (const l of needsK8s)
        ctx.addIssue({ code: 'custom', path: ['layers', l], message: `the ${l} layer needs a kubernetes layer (a profile without one manages only the OS)` });
    // Where the distribution comes from: the OS image (managed OS) or an artifact (unmanaged OS), never both.
    if (!spec.layers.os && !k) ctx.addIssue({ code: 'custom', path: ['layers'], message: 'a profile needs an os layer, a kubernetes layer, or both' });
    if (!spec.layers.os && k && !k.artifact)
      ctx.addIssue({
        code: 'custom',
        path: ['layers', 'kubernetes', 'artifact'],
        message: 'a profile without an os layer is for hosts that keep their own OS: name the artifact the distribution is installed from',
      });
    if (spec.layers.os && k?.artifact)
      ctx.addIssue({
        code: 'custom',
        path: ['layers', 'kubernetes', 'artifact'],
        message: 'with an os layer the OS image carries the distribution; an artifact is only for profiles without an os layer',
      });
    const names = new Set(spec.layers.addons.map((a) => a.name));
    if (names.size !== spec.layers.addons.length) ctx.addIssue({ code: 'custom', path: ['layers', 'addons'], message: 'add-on names must be unique' });
    if (spec.layers.storage !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['layers', 'storage'],
        message: 'there is no storage layer: install the CSI driver as an add-on (layers.addons, a manifest or a chart)',
      });
    if (k) kubernetesRuleIssues(k, spec.layers.network, names, ctx);
  });

/**
 * What the distribution's upstream rules (kubernetes/) say about the profile: config keys it does not
 * know or takes in another type, and a CNI it does not bring without the add-on that installs it
 * (nodes would stay NotReady forever). Values holding ${var.*} are checked by the agent once substituted.
 */
function kubernetesRuleIssues(
  k: z.infer<typeof KubernetesLayer>,
  network: z.infer<typeof NetworkLayer> | undefined,
  addons: Set<string>,
  ctx: z.RefinementCtx,
): void {
  const rules = rulesFor(k.distribution);
  const concrete = Object.fromEntries(Object.entries(k.config).filter(([, v]) => variableReferences(v).length === 0));
  for (const p of rules.configProblems(concrete)) ctx.addIssue({ code: 'custom', path: ['layers', 'kubernetes', 'config', p.key], message: p.message });
  if (cniIsBundled(rules, network?.cni)) return;
  if (!network)
    ctx.addIssue({
      code: 'custom',
      path: ['layers', 'network'],
      message: `${k.distribution} brings no CNI: name one in layers.network.cni and add an add-on of that name that installs it (nodes stay NotReady without a CNI)`,
    });
  else if (network.cni !== 'none' && !addons.has(network.cni))
    ctx.addIssue({
      code: 'custom',
      path: ['layers', 'addons'],
      message: `${k.distribution} does not bring the CNI ${network.cni}: add an add-on named ${network.cni} that installs it (nodes stay NotReady without a CNI)`,
    });
  else if (network.cni === 'none')
    ctx.addIssue({
      code: 'custom',
      path: ['layers', 'network', 'cni'],
      message: `cni "none" leaves every node NotReady: name the CNI and add an add-on of that name that installs it`,
    });
}
export type ClusterProfileSpec = z.infer<typeof ClusterProfileSpec>;

export const ClusterProfileStatus = z.object({
  latestRevision: z.number().int().positive().optional(),
  /** Digest the OS image of the latest revision is pinned to. */
  osImageDigest: Digest.optional(),
  /** Digest the distribution artifact of the latest revision is pinned to (profiles without an os layer). */
  artifactDigest: Digest.optional(),
});

/** The OS mode of the hosts a profile is for: an os layer means Edgeplane's A/B OS. */
export function profileOsMode(spec: { layers: { os?: unknown } }): 'managed' | 'unmanaged' {
  return spec.layers.os ? 'managed' : 'unmanaged';
}

export const ClusterProfile = resourceSchema('ClusterProfile', ClusterProfileSpec, ClusterProfileStatus);
export type ClusterProfile = z.infer<typeof ClusterProfile>;
export const ClusterProfileInput = resourceInputSchema('ClusterProfile', ClusterProfileSpec);

/** An immutable numbered snapshot of a profile's spec, with the OS image pinned to a digest. */
export const ClusterProfileRevision = z.object({
  apiVersion: z.literal('edgeplane.io/v1'),
  kind: z.literal('ClusterProfileRevision'),
  profile: Name,
  revision: z.number().int().positive(),
  createdAt: Timestamp,
  /** The profile spec at this revision; layers.os.digest (or layers.kubernetes.artifact.digest) is the pinned manifest digest. */
  spec: z.unknown(),
});
export type ClusterProfileRevision = z.infer<typeof ClusterProfileRevision>;

// ---- variables: ${var.NAME} inside string values ----

const VAR_REF = /\$\{var\.([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Every variable name referenced in the string values of `value`, with the path of each use. */
export function variableReferences(value: unknown, path: string[] = []): { name: string; path: string }[] {
  if (typeof value === 'string') return [...value.matchAll(VAR_REF)].map((m) => ({ name: m[1], path: path.join('.') }));
  if (Array.isArray(value)) return value.flatMap((v, i) => variableReferences(v, [...path, String(i)]));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => variableReferences(v, [...path, k]));
  return [];
}

/** Replaces ${var.NAME} in every string value; names missing from `values` are left as written. */
export function substituteVariables<T>(value: T, values: Record<string, string>): T {
  if (typeof value === 'string') return value.replace(VAR_REF, (all, name: string) => (Object.hasOwn(values, name) ? values[name] : all)) as T;
  if (Array.isArray(value)) return value.map((v) => substituteVariables(v, values)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteVariables(v, values)])) as T;
  return value;
}
