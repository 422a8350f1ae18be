import { EdgeplaneError } from '@edgeplane/protocol';
import type { Executor } from '../store/db.js';
import { findSecret, listSteps, upsertSecret } from './cluster.repository.js';
import { clusterOf } from './host-claims.js';
import type { SecretBox } from './secret-box.js';

/** What the agent channel needs from the cluster side: the secret box, and a way to wake the controller. */
export interface ClusterHooks {
  secrets: SecretBox;
  nudge(): void;
}

type AgentStatusLike = { managers?: { kubernetes?: { kubeconfig?: string } & Record<string, unknown> } & Record<string, unknown> } & Record<string, unknown>;

/**
 * Takes the admin kubeconfig out of an agent status before the status is stored: it goes into
 * cluster_secrets (encrypted) for the cluster the host belongs to, and the host status never
 * holds it. It is taken only from the node that produced it, the cluster's init control-plane node,
 * while the cluster initializes (or until a first kubeconfig is stored); any other report (another
 * member, a host in no cluster, the init node once the cluster ran) is dropped, so a compromised
 * node cannot replace the kubeconfig operators download.
 */
export async function takeClusterSecrets(
  db: Executor,
  host: { name: string; annotations: string },
  status: unknown,
  box: SecretBox | undefined,
): Promise<unknown> {
  const s = status as AgentStatusLike | undefined;
  const kubeconfig = s?.managers?.kubernetes?.kubeconfig;
  if (!s?.managers?.kubernetes || kubeconfig === undefined) return status;
  const { kubeconfig: _secret, ...kubernetes } = s.managers.kubernetes;
  const cluster = clusterOf(host);
  if (cluster && box && kubeconfig && (await mayReportKubeconfig(db, cluster, host.name))) {
    const aad = `${cluster}/kubeconfig`;
    const stored = await findSecret(db, cluster, 'kubeconfig');
    let same = false;
    try {
      same = stored !== undefined && box.open(stored, aad) === kubeconfig;
    } catch {}
    if (!same) await upsertSecret(db, cluster, 'kubeconfig', box.seal(kubeconfig, aad));
  }
  return { ...s, managers: { ...s.managers, kubernetes } };
}

async function mayReportKubeconfig(db: Executor, cluster: string, host: string): Promise<boolean> {
  const steps = await listSteps(db, cluster);
  if (steps.get('init') !== host) return false;
  return !steps.has('running') || (await findSecret(db, cluster, 'kubeconfig')) === undefined;
}

/** The stored admin kubeconfig with every `server:` pointing at the control-plane endpoint. */
export async function clusterKubeconfig(db: Executor, box: SecretBox, cluster: string, endpoint: string | undefined): Promise<string> {
  const sealed = await findSecret(db, cluster, 'kubeconfig');
  if (!sealed || !endpoint)
    throw new EdgeplaneError('InvalidState', `cluster "${cluster}" has no kubeconfig yet: its first control-plane node has not reported one`, { cluster });
  const text = box.open(sealed, `${cluster}/kubeconfig`);
  // A regex, not a YAML round trip: kubeconfigs keep their comments and layout, and `server:` only appears under clusters[].cluster.
  return text.replace(/^(\s*server:\s*).*$/gm, `$1${endpoint}`);
}
