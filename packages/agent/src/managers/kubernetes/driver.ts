import type { Distribution, KubernetesSpec, Taint } from '@edgeplane/protocol';

/** A file a driver writes. `path` is absolute on the device (resolved under Device.root). */
export interface DriverFile {
  path: string;
  content: string;
  mode: number;
}

/** A one-shot command (kubeadm init/join). It runs once; `marker` records that it succeeded. */
export interface BootstrapCommand {
  command: string;
  args: string[];
  /** File written after the command succeeded; while it exists the command is not run again. */
  marker: string;
}

/**
 * One driver per Kubernetes distribution. A driver only renders: the files the distribution
 * documents as its configuration, the service that runs it and where its kubeconfigs are. The
 * KubernetesManager does the side effects through the Device.
 */
export interface KubernetesDriver {
  readonly distribution: Distribution;
  /** Configuration files for this node, in the distribution's own format. */
  files(spec: KubernetesSpec): DriverFile[];
  /** systemd unit that runs the node (without `.service`). */
  serviceName(spec: Pick<KubernetesSpec, 'role'>): string;
  /** Kubeconfig this node reads its own Node object with (admin on servers, the kubelet's on agents). */
  nodeKubeconfig(spec: Pick<KubernetesSpec, 'role'>): string;
  /** Admin kubeconfig written on control-plane nodes: reported by the init node, used by add-ons. */
  readonly adminKubeconfig: string;
  /** Command that initializes or joins the node after the files are written, when the distribution needs one. */
  bootstrap?(spec: KubernetesSpec): BootstrapCommand | undefined;
  /**
   * kubeadm: the command that uploads the control-plane certificates again on the init node (they
   * expire 2 h after an upload; a control-plane join needs them). Its marker holds spec.uploadCerts.
   */
  uploadCerts?(spec: KubernetesSpec): BootstrapCommand | undefined;
  /**
   * True when restarting the service applies a changed configuration (k3s, rke2). kubeadm reads its
   * file only at init/join, so a change after that is reported rather than half-applied.
   */
  readonly restartAppliesConfig: boolean;
  /**
   * How the node leaves its cluster when the spec no longer has Kubernetes: a command that stops
   * what the service left running (and, for kubeadm, undoes init/join), then paths to delete.
   * `keep` names entries inside a deleted directory that survive (air-gap image tarballs).
   */
  reset(): { command?: { command: string; args: string[] }; paths: string[]; keep?: string[] };
  /** How add-on charts are installed: the distribution's helm-controller (HelmChart objects) or the helm CLI. */
  readonly charts: 'helm-controller' | 'helm-cli';
}

/** Taint every control-plane node gets when control-plane nodes take no workloads. */
export const CONTROL_PLANE_TAINT: Taint = { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' };

/** The spec's taints plus the control-plane taint where control-plane nodes are not schedulable. */
export function effectiveTaints(spec: KubernetesSpec): Taint[] {
  const taints = [...spec.nodeTaints];
  const cpTainted = spec.role === 'control-plane' && !spec.controlPlaneSchedulable;
  if (cpTainted && !taints.some((t) => t.key === CONTROL_PLANE_TAINT.key && t.effect === CONTROL_PLANE_TAINT.effect)) {
    taints.push(CONTROL_PLANE_TAINT);
  }
  return taints;
}

/** `key=value` pairs in key order, the syntax of k3s/rke2 `node-label` and kubelet `--node-labels`. */
export function labelPairs(labels: Record<string, string>): string[] {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`);
}

/** `key=value:Effect` (or `key:Effect`), the syntax of k3s/rke2 `node-taint` and kubelet `--register-with-taints`. */
export function taintString(t: Taint): string {
  return t.value ? `${t.key}=${t.value}:${t.effect}` : `${t.key}:${t.effect}`;
}

/** Parses `key=value:Effect` / `key:Effect`; undefined when malformed. */
export function parseTaint(text: string): Taint | undefined {
  const m = text.match(/^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/);
  if (!m) return undefined;
  return m[2] ? { key: m[1], value: m[2], effect: m[3] as Taint['effect'] } : { key: m[1], effect: m[3] as Taint['effect'] };
}

/** Parses `key=value` pairs (a `key` alone has an empty value). */
export function parseLabelPairs(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    if (i < 0) out[item] = '';
    else out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge where `over` wins; arrays are replaced, not concatenated. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}
