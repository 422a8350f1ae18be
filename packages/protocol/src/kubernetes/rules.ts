/**
 * What each Kubernetes distribution accepts and does, as code: the agent's drivers and the
 * simulator (packages/agent), and the server's validation, read the same rules. Plain TypeScript
 * (no zod) so any package can import it. One module per distribution (k3s.ts, rke2.ts,
 * kubeadm.ts); every rule cites the upstream file or page it comes from.
 */
import type { Distribution } from '../host-spec.js';

/** How a YAML config value is read: the flag's type in the distribution's CLI. */
export type ConfigValueType = 'string' | 'bool' | 'int' | 'list';

/**
 * What changing a setting on a running cluster takes:
 *  - restart:     rewrite the config file and restart the service, one node at a time (k3s, rke2)
 *  - not-applied: read only when a node initializes or joins (kubeadm): a running node keeps the old
 *                 value; it takes effect on nodes that join later (or after a reset and re-join)
 *  - new-cluster: fixed when the cluster was created (upstream refuses a node that differs, or the
 *                 cluster breaks): only a new cluster gets it
 */
export type ChangeEffect = 'restart' | 'not-applied' | 'new-cluster';

/** Which subcommand (k3s/rke2 `server` / `agent`) takes a config key. */
export type ConfigRole = 'server' | 'agent';

export interface ConfigKeyRule {
  type: ConfigValueType;
  /** `agent` keys are accepted by both subcommands (servers run an agent too); `server` keys only by `server`. */
  role: ConfigRole;
  effect: ChangeEffect;
}

/** A setting in a profile's kubernetes config the distribution would not take as written. */
export interface ConfigProblem {
  key: string;
  message: string;
}

export interface DistributionRules {
  readonly distribution: Distribution;
  /** Port a joining node dials: the API server (6443) or rke2's supervisor (9345). */
  readonly joinPort: number;
  /**
   * Why `token` cannot be the cluster's server token (the first server's and joining servers'
   * `token`), in upstream's words; undefined when it is accepted. kubeadm: the bootstrap-token format.
   */
  serverTokenProblem(token: string): string | undefined;
  /** CNIs the distribution ships and runs itself; any other CNI must be installed as an add-on. */
  readonly bundledCnis: readonly string[];
  /** The CNI the distribution runs when the profile names none (undefined: none, kubeadm). */
  readonly defaultCni: string | undefined;
  /**
   * How a control-plane node's etcd member leaves when the node is removed:
   *  - delete-node:   deleting its Node object makes the remaining servers remove the member (k3s, rke2)
   *  - kubeadm-reset: `kubeadm reset` on the node removes its own member; the Node object is deleted separately
   */
  readonly etcdMemberRemoval: 'delete-node' | 'kubeadm-reset';
  /** Problems with the profile's config values for this distribution (unknown keys, wrong types). */
  configProblems(config: Record<string, unknown>): ConfigProblem[];
  /** What changing `key` of the profile's config takes on a running cluster. */
  changeEffect(key: string): ChangeEffect;
}

/** True when the distribution runs `cni` itself (undefined: the distribution's default, if any). */
export function cniIsBundled(rules: Pick<DistributionRules, 'bundledCnis' | 'defaultCni'>, cni: string | undefined): boolean {
  const name = cni ?? rules.defaultCni;
  return name !== undefined && name !== 'none' && rules.bundledCnis.includes(name);
}

/**
 * CNIs the simulator (and the profile check) recognise by name in an add-on: the add-on's name, its
 * chart name or one of its manifest's DaemonSets names one of these.
 */
export const KNOWN_CNIS = ['calico', 'canal', 'cilium', 'flannel', 'kube-router', 'weave-net', 'antrea', 'kube-ovn', 'multus'] as const;

/** Checks YAML values against a flag table (k3s/rke2 config.yaml keys are their long flag names). */
export function flagTableProblems(table: Record<string, ConfigKeyRule>, config: Record<string, unknown>, name: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [key, value] of Object.entries(config)) {
    const rule = table[key];
    if (!rule) {
      problems.push({ key, message: `${name} has no option "${key}" (it would log "Unknown flag --${key} found in config.yaml, skipping" and ignore it)` });
      continue;
    }
    const bad = valueTypeProblem(rule.type, value);
    if (bad) problems.push({ key, message: `${name} option "${key}" ${bad}` });
  }
  return problems;
}

function valueTypeProblem(type: ConfigValueType, value: unknown): string | undefined {
  const scalar = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
  switch (type) {
    case 'bool':
      return typeof value === 'boolean' || value === 'true' || value === 'false' ? undefined : 'is a switch: true or false';
    case 'int':
      return (typeof value === 'number' && Number.isInteger(value)) || (typeof value === 'string' && /^\d+$/.test(value)) ? undefined : 'takes a whole number';
    case 'list':
      return scalar || (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number'))
        ? undefined
        : 'takes a string or a list of strings';
    default:
      return scalar ? undefined : 'takes a single value (a string)';
  }
}
