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
import {
  KUBEADM_BOOTSTRAP_TOKEN_PATTERN,
  KUBEADM_CERTIFICATE_KEY_PATTERN,
  kubeadmReadsApiVersion,
  kubeadmUnknownKindMessage,
  rulesFor,
} from '@edgeplane/protocol';
import { parseAllDocuments } from 'yaml';
import { parseEndpoint } from '../../managers/kubernetes/endpoint.js';
import type { ExecResult } from '../exec.js';
import { ExecError } from '../exec.js';
import { kubeconfigCredentials } from '../kubeconfig.js';
import type { ServiceManager } from '../services.js';
import { type SimClusterRegistry, SimRefusal } from './sim-kubernetes.js';
import { installedVersion, parseLabelList, readDeviceFile, writeKubeconfig } from './sim-units.js';

export interface SimCommandContext {
  root: string;
  /** Where the simulation keeps its own records (default `root`; a writable directory when `root` is a read-only OS). */
  stateRoot?: string;
  registry: SimClusterRegistry;
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

/**
 * The node whose kubelet credential is in `kubeconfigPath` was reset: its kubelet and its copy of the
 * datastore are gone. Its Node object stays (NotReady), and so does its etcd member unless
 * `removeEtcdMember` (see SimKubernetes.resetNode).
 */
async function reset(ctx: SimCommandContext, kubeconfigPath: string, removeEtcdMember: boolean): Promise<void> {
  const text = await readDeviceFile(ctx.root, kubeconfigPath);
  const creds = text ? kubeconfigCredentials(text) : undefined;
  if (creds?.token) await ctx.registry.resetNode({ server: creds.server, token: creds.token }, { removeEtcdMember });
}

/**
 * `k3s-killall.sh` / `rke2-killall.sh`: the real scripts stop every process and container of the
 * distribution; the agent then deletes the cluster data. Nothing here touches the cluster's API:
 * the Node object and the etcd member stay until the Node is deleted (k3s's member controller then
 * removes the member), exactly as on a real cluster.
 */
function killall(distribution: 'k3s' | 'rke2'): SimCommand {
  return async (_args, ctx) => {
    await ctx.services.stop(distribution === 'k3s' ? 'k3s' : 'rke2-server');
    await ctx.services.stop(`${distribution}-agent`);
    await reset(ctx, `/var/lib/rancher/${distribution}/agent/kubelet.kubeconfig`, false);
    return { stdout: '', stderr: '' };
  };
}

/** Flags the simulated kubeadm knows per subcommand; others are refused like cobra does. */
const KUBEADM_FLAGS: Record<string, string[]> = {
  init: ['--config', '--upload-certs', '--skip-phases', '--certificate-key', '--v'],
  join: ['--config', '--v'],
  reset: ['--force', '-f', '--v'],
  'upload-certs': ['--config', '--upload-certs', '--certificate-key', '--v'],
};
const KUBEADM_VALUE_FLAGS = new Set(['--config', '--skip-phases', '--certificate-key', '--v']);

function checkFlags(subcommand: string, args: string[]): void {
  const known = KUBEADM_FLAGS[subcommand] ?? [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].split('=')[0];
    if (!name.startsWith('-')) continue;
    if (!known.includes(name)) throw new SimRefusal(`unknown flag: ${name}`, false);
    if (KUBEADM_VALUE_FLAGS.has(name) && !args[i].includes('=')) i++;
  }
}

/** The documents of a kubeadm --config file, each checked against the installed kubeadm's config API. */
function kubeadmDocuments(text: string, version: string): Doc[] {
  const docs = parseAllDocuments(text).map((d) => (d.toJS() ?? {}) as Doc);
  for (const doc of docs) {
    const apiVersion = String(doc.apiVersion ?? '');
    if (!apiVersion.startsWith('kubeadm.k8s.io/')) continue; // kubelet/kube-proxy documents are passed on
    if (!kubeadmReadsApiVersion(version, apiVersion)) throw new SimRefusal(kubeadmUnknownKindMessage(String(doc.kind ?? ''), apiVersion), false);
  }
  return docs;
}

async function kubeadm(args: string[], ctx: SimCommandContext): Promise<ExecResult> {
  const phase = args[0];
  if (phase === 'reset') {
    checkFlags('reset', args.slice(1));
    await ctx.services.stop('kubelet');
    // Phase remove-etcd-member: a control-plane node takes its own etcd member out (the Node object stays).
    await reset(ctx, '/etc/kubernetes/kubelet.conf', true);
    for (const file of ['/etc/kubernetes/admin.conf', '/etc/kubernetes/kubelet.conf']) await rm(joinPath(ctx.root, file), { force: true });
    return { stdout: '[reset] simulated\n', stderr: '' };
  }
  if (phase === 'init' && args[1] === 'phase' && args[2] === 'upload-certs') return uploadCerts(args.slice(3), ctx);
  const configPath = flag(args, '--config');
  if ((phase !== 'init' && phase !== 'join') || !configPath) throw new SimRefusal(`the simulated kubeadm only runs 'init --config' and 'join --config'`, false);
  checkFlags(phase, args.slice(1));
  const text = await readDeviceFile(ctx.root, configPath);
  if (text === undefined) throw new SimRefusal(`unable to read config from "${configPath}"`, false);
  const version = await installedVersion(ctx.root, 'kubeadm', ctx.stateRoot);
  const docs = kubeadmDocuments(text, version);
  const find = (kind: string) => docs.find((d) => d.kind === kind);
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
    const tokenProblem = rulesFor('kubeadm').serverTokenProblem(token);
    if (tokenProblem) throw new SimRefusal(tokenProblem, false);
    const uploadCerts = args.includes('--upload-certs');
    if (uploadCerts && init.certificateKey !== undefined && !KUBEADM_CERTIFICATE_KEY_PATTERN.test(init.certificateKey))
      throw new SimRefusal('invalid certificate key: must be 32 bytes, hex encoded', false);
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
      // kubeadm installs no CNI: every node stays NotReady until an add-on brings one.
      bundledCni: undefined,
      uploadCerts,
      stableEndpoint: true,
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
  const discovery = join?.discovery?.bootstrapToken as
    | { apiServerEndpoint?: string; token?: string; unsafeSkipCAVerification?: boolean; caCertHashes?: string[] }
    | undefined;
  if (!join || !discovery?.apiServerEndpoint || !discovery.token)
    throw new SimRefusal('JoinConfiguration.discovery.bootstrapToken is required by the simulation', false);
  if (!KUBEADM_BOOTSTRAP_TOKEN_PATTERN.test(discovery.token))
    throw new SimRefusal(`the bootstrap token "${discovery.token}" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z"`, false);
  // cmd/kubeadm/app/apis/kubeadm/validation: token discovery without CA pinning must be asked for.
  if (!discovery.unsafeSkipCAVerification && !(discovery.caCertHashes?.length ?? 0))
    throw new SimRefusal(
      'discovery.bootstrapToken: Invalid value: "": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue',
      false,
    );
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

/**
 * `kubeadm init phase upload-certs --upload-certs --config FILE` (or `--certificate-key KEY`) on a
 * control-plane node: the certificates are uploaded again, downloadable for another 2 h.
 */
async function uploadCerts(args: string[], ctx: SimCommandContext): Promise<ExecResult> {
  checkFlags('upload-certs', args);
  if (!args.includes('--upload-certs')) return { stdout: '[upload-certs] Skipping phase. Please see --upload-certs\n', stderr: '' };
  let key = flag(args, '--certificate-key');
  const configPath = flag(args, '--config');
  if (!key && configPath) {
    const text = await readDeviceFile(ctx.root, configPath);
    if (text === undefined) throw new SimRefusal(`unable to read config from "${configPath}"`, false);
    const init = kubeadmDocuments(text, await installedVersion(ctx.root, 'kubeadm', ctx.stateRoot)).find((d) => d.kind === 'InitConfiguration') as
      | { certificateKey?: string }
      | undefined;
    key = init?.certificateKey;
  }
  if (!key || !KUBEADM_CERTIFICATE_KEY_PATTERN.test(key))
    throw new SimRefusal('a certificate key (32 bytes, hex encoded) is required to upload the certificates', false);
  const admin = await readDeviceFile(ctx.root, '/etc/kubernetes/admin.conf');
  if (!admin) throw new SimRefusal('failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory', false);
  const creds = kubeconfigCredentials(admin);
  await ctx.registry.uploadCerts({ server: creds.server, token: creds.token ?? '' }, key);
  return {
    stdout: `[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace\n[upload-certs] Using certificate key:\n${key}\n`,
    stderr: '',
  };
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
  const revisions = (await api.list())
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

/** True for the commands the simulation answers (the others are refused on a SimDevice, run for real elsewhere). */
export function isSimCommand(command: string): boolean {
  return Object.hasOwn(COMMANDS, command);
}

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
