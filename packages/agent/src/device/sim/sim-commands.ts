/**
 * SIMULATION. Commands a SimDevice answers through `exec` in place of the real tools: `kubeadm`
 * (init/join read the --config file the kubeadm driver wrote and act on the simulated cluster
 * registry, write admin.conf/kubelet.conf and start the simulated kubelet, as kubeadm does) and
 * `kubeadm reset`, `k3s-killall.sh` / `rke2-killall.sh` (the node leaves its simulated cluster) and
 * `helm upgrade --install` (records a release the way helm stores it: a `helm.sh/release.v1` Secret
 * in the release namespace) and `edgeplane-sim-health` (a stand-in for a profile's command health
 * check, see simHealth). Every other command is refused: a simulated device runs no binaries.
 */
import { rm } from 'node:fs/promises';
import { join as joinPath } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseEndpoint } from '../../managers/kubernetes/endpoint.js';
import type { ExecResult } from '../exec.js';
import { ExecError } from '../exec.js';
import { kubeconfigCredentials } from '../kubeconfig.js';
import type { ServiceManager } from '../services.js';
import { type SimKubernetes, SimRefusal } from './sim-kubernetes.js';
import { installedVersion, parseLabelList, readDeviceFile, writeKubeconfig } from './sim-units.js';

export interface SimCommandContext {
  root: string;
  registry: SimKubernetes;
  services: ServiceManager;
}

type SimCommand = (args: string[], ctx: SimCommandContext) => Promise<ExecResult>;

/** Value of `--flag value` or `--flag=value`. */
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

type Doc = Record<string, unknown> & { kind?: string };
type Registration = { name?: string; taints?: { key: string; value?: string; effect: string }[] | null; kubeletExtraArgs?: unknown };

function nodeLabels(reg: Registration): Record<string, string> {
  const args = reg.kubeletExtraArgs;
  // v1beta3: map; v1beta4: list of {name, value}.
  const value = Array.isArray(args)
    ? (args as { name?: string; value?: string }[]).find((a) => a.name === 'node-labels')?.value
    : (args as Record<string, string> | undefined)?.['node-labels'];
  return parseLabelList(value ?? '');
}

/** Forgets the node whose kubelet credential is in `kubeconfigPath` (the data removal of a reset). */
async function leave(ctx: SimCommandContext, kubeconfigPath: string): Promise<void> {
  const text = await readDeviceFile(ctx.root, kubeconfigPath);
  const creds = text ? kubeconfigCredentials(text) : undefined;
  if (creds?.token) await ctx.registry.leave({ server: creds.server, token: creds.token });
}

/**
 * `k3s-killall.sh` / `rke2-killall.sh`: the real scripts stop every process and container of the
 * distribution; the agent then deletes the cluster data. The simulation forgets the node here, as
 * the deleted data would leave the cluster without it.
 */
function killall(distribution: 'k3s' | 'rke2'): SimCommand {
  return async (_args, ctx) => {
    await ctx.services.stop(distribution === 'k3s' ? 'k3s' : 'rke2-server');
    await ctx.services.stop(`${distribution}-agent`);
    await leave(ctx, `/var/lib/rancher/${distribution}/agent/kubelet.kubeconfig`);
    return { stdout: '', stderr: '' };
  };
}

async function kubeadm(args: string[], ctx: SimCommandContext): Promise<ExecResult> {
  const phase = args[0];
  if (phase === 'reset') {
    await ctx.services.stop('kubelet');
    await leave(ctx, '/etc/kubernetes/kubelet.conf');
    for (const file of ['/etc/kubernetes/admin.conf', '/etc/kubernetes/kubelet.conf']) await rm(joinPath(ctx.root, file), { force: true });
    return { stdout: '[reset] simulated\n', stderr: '' };
  }
  const configPath = flag(args, '--config');
  if ((phase !== 'init' && phase !== 'join') || !configPath) throw new SimRefusal(`the simulated kubeadm only runs 'init --config' and 'join --config'`, false);
  const text = await readDeviceFile(ctx.root, configPath);
  if (text === undefined) throw new SimRefusal(`unable to read config from "${configPath}"`, false);
  const docs = parseAllDocuments(text).map((d) => (d.toJS() ?? {}) as Doc);
  const find = (kind: string) => docs.find((d) => d.kind === kind);
  const version = await installedVersion(ctx.root, 'kubeadm');
  const controlPlaneTaint = [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' as const }];
  const toNode = (reg: Registration, role: 'control-plane' | 'worker') => {
    if (!reg.name) throw new SimRefusal('nodeRegistration.name is required by the simulation', false);
    const cpLabels: Record<string, string> =
      role === 'control-plane' ? { 'node-role.kubernetes.io/control-plane': '', 'node.kubernetes.io/exclude-from-external-load-balancers': '' } : {};
    return {
      name: reg.name,
      role,
      labels: { ...cpLabels, ...nodeLabels(reg) },
      // kubeadm taints control-plane nodes unless the config lists taints explicitly (an empty list means none).
      taints: (reg.taints ?? (role === 'control-plane' ? controlPlaneTaint : [])).map((t) => ({ ...t, effect: t.effect as 'NoSchedule' })),
      kubeletVersion: version,
    };
  };

  if (phase === 'init') {
    const init = find('InitConfiguration') as
      | (Doc & { bootstrapTokens?: { token?: string }[]; certificateKey?: string; nodeRegistration?: Registration })
      | undefined;
    const cluster = find('ClusterConfiguration') as (Doc & { controlPlaneEndpoint?: string; clusterName?: string; kubernetesVersion?: string }) | undefined;
    if (!init || !cluster?.controlPlaneEndpoint)
      throw new SimRefusal('InitConfiguration and ClusterConfiguration.controlPlaneEndpoint are required by the simulation', false);
    const token = init.bootstrapTokens?.[0]?.token;
    if (!token) throw new SimRefusal('InitConfiguration.bootstrapTokens is required by the simulation', false);
    const endpoint = parseEndpoint(cluster.controlPlaneEndpoint);
    const result = await ctx.registry.init({
      distribution: 'kubeadm',
      version: cluster.kubernetesVersion ?? version,
      host: endpoint.host,
      apiPort: endpoint.port ?? 6443,
      token,
      certificateKey: init.certificateKey,
      clusterName: cluster.clusterName ?? 'kubernetes',
      node: toNode(init.nodeRegistration ?? {}, 'control-plane'),
    });
    await writeKubeconfig(ctx.root, '/etc/kubernetes/admin.conf', result.admin, 'kubernetes-admin');
    await writeKubeconfig(ctx.root, '/etc/kubernetes/kubelet.conf', result.node, `system:node:${init.nodeRegistration?.name}`);
    await ctx.services.start('kubelet');
    return { stdout: 'Your Kubernetes control-plane has initialized successfully! (simulated)\n', stderr: '' };
  }

  const join = find('JoinConfiguration') as
    | (Doc & {
        discovery?: { bootstrapToken?: { apiServerEndpoint?: string; token?: string } };
        controlPlane?: { certificateKey?: string };
        nodeRegistration?: Registration;
      })
    | undefined;
  const discovery = join?.discovery?.bootstrapToken;
  if (!join || !discovery?.apiServerEndpoint || !discovery.token)
    throw new SimRefusal('JoinConfiguration.discovery.bootstrapToken is required by the simulation', false);
  const role = join.controlPlane ? 'control-plane' : 'worker';
  const result = await ctx.registry.join({
    distribution: 'kubeadm',
    server: discovery.apiServerEndpoint,
    token: discovery.token,
    certificateKey: join.controlPlane?.certificateKey,
    node: toNode(join.nodeRegistration ?? {}, role),
  });
  if (result.admin) await writeKubeconfig(ctx.root, '/etc/kubernetes/admin.conf', result.admin, 'kubernetes-admin');
  await writeKubeconfig(ctx.root, '/etc/kubernetes/kubelet.conf', result.node, `system:node:${join.nodeRegistration?.name}`);
  await ctx.services.start('kubelet');
  return { stdout: 'This node has joined the cluster (simulated)\n', stderr: '' };
}

/** helm flags that take a value (the others are switches). */
const VALUE_FLAGS = new Set(['--repo', '--version', '--namespace', '-n', '--values', '-f', '--kubeconfig', '--timeout']);

async function helm(args: string[], ctx: SimCommandContext): Promise<ExecResult> {
  if (args[0] !== 'upgrade' || !args.includes('--install')) throw new SimRefusal(`the simulated helm only runs 'upgrade --install'`, false);
  const positional: string[] = [];
  for (let i = 1; i < args.length; i++) {
    if (VALUE_FLAGS.has(args[i])) i++;
    else if (!args[i].startsWith('-')) positional.push(args[i]);
  }
  const [release, chart] = positional;
  const kubeconfig = flag(args, '--kubeconfig');
  if (!release || !chart || !kubeconfig) throw new SimRefusal('usage: helm upgrade --install RELEASE CHART --kubeconfig FILE', false);
  const namespace = flag(args, '--namespace') ?? 'default';
  const text = await readDeviceFile(ctx.root, kubeconfig);
  if (!text) throw new SimRefusal(`kubeconfig ${kubeconfig} not found`, true);
  const creds = kubeconfigCredentials(text);
  const api = ctx.registry.session({ server: creds.server, token: creds.token ?? '' });
  if (args.includes('--create-namespace')) await api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, 'helm');
  const valuesFile = flag(args, '--values');
  const values = valuesFile ? ((await readDeviceFile(ctx.root, valuesFile)) ?? '') : '';
  const prefix = `sh.helm.release.v1.${release}.v`;
  const revisions = api
    .list()
    .filter((o) => o.kind === 'Secret' && o.metadata.namespace === namespace && o.metadata.name.startsWith(prefix))
    .map((o) => Number(o.metadata.name.slice(prefix.length)));
  const revision = Math.max(0, ...revisions) + 1;
  const record = { chart, repo: flag(args, '--repo'), version: flag(args, '--version'), values };
  await api.apply(
    {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'helm.sh/release.v1',
      metadata: { name: `${prefix}${revision}`, namespace, labels: { name: release, owner: 'helm', status: 'deployed', version: String(revision) } },
      data: { release: Buffer.from(JSON.stringify(record)).toString('base64') },
    },
    'helm',
  );
  return { stdout: `Release "${release}" has been upgraded. Happy Helming! (simulated)\nREVISION: ${revision}\n`, stderr: '' };
}

/**
 * SIMULATION. `edgeplane-sim-health ok | fail [message...] | marker <path>`: a command a profile's
 * health check (`type: command`) can name so tests decide its outcome. `ok` exits 0; `fail` exits 1
 * with the message on stderr; `marker` exits 1 (stderr = the file's content) while the file exists
 * on the device (under the SimDevice root), else 0, so a test can fail the check on one node only.
 */
async function simHealth(args: string[], ctx: SimCommandContext): Promise<ExecResult> {
  const [mode, ...rest] = args;
  if (mode === 'ok') return { stdout: 'ok (simulated)\n', stderr: '' };
  if (mode === 'fail') throw new ExecError('edgeplane-sim-health', args, rest.join(' ') || 'simulated health check failure', 1, false);
  if (mode === 'marker' && rest[0]) {
    const marker = await readDeviceFile(ctx.root, rest[0]);
    if (marker === undefined) return { stdout: 'ok (simulated)\n', stderr: '' };
    throw new ExecError('edgeplane-sim-health', args, marker.trim() || `marker ${rest[0]} is present`, 1, false);
  }
  throw new ExecError('edgeplane-sim-health', args, 'usage: edgeplane-sim-health ok | fail [message...] | marker <path>', 2, false);
}

const COMMANDS: Record<string, SimCommand> = {
  kubeadm,
  helm,
  'k3s-killall.sh': killall('k3s'),
  'rke2-killall.sh': killall('rke2'),
  'edgeplane-sim-health': simHealth,
};

/** Runs a simulated command; failures become ExecError (stderr says why) like a real non-zero exit. */
export async function runSimCommand(command: string, args: string[], ctx: SimCommandContext): Promise<ExecResult> {
  const run = COMMANDS[command];
  if (!run) throw new ExecError(command, args, `${command}: command not available on a simulated device`, 127);
  try {
    return await run(args, ctx);
  } catch (err) {
    if (err instanceof ExecError) throw err; // already an exit status and output, as the command put it
    const message = (err as Error).message;
    // `retryable` lets the caller tell a refusal that retrying cannot fix from a transient failure.
    throw new ExecError(command, args, `error execution phase: ${message}`, 1, err instanceof SimRefusal ? err.retryable : true);
  }
}
