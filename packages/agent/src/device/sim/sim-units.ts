/**
 * SIMULATION. What "starting" a Kubernetes distribution's service does on a SimDevice: no binary
 * runs; the unit reads the configuration file the agent's driver wrote (the same file the real
 * service would read), acts on it against the simulated cluster registry (sim-kubernetes.ts), and
 * writes the kubeconfigs the real service would write (token-authenticated, marked SIMULATED, and
 * naming the cluster endpoint where k3s and rke2 would say 127.0.0.1). They are as strict as the real
 * services (rules in @edgeplane/protocol kubernetes/): a server refuses a token upstream cannot
 * normalize, an agent needs server and token, unknown keys are skipped with upstream's warning, and
 * the bundled CNI runs unless turned off. The Kubernetes version a
 * simulated kubelet reports is the one the agent recorded in /etc/edgeplane/kubernetes.yaml, since
 * there is no installed binary to ask.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type Distribution, K3S_CONFIG_KEYS, RKE2_CONFIG_KEYS, rulesFor, type Taint } from '@edgeplane/protocol';
import { parse } from 'yaml';
import { KUBERNETES_RECORD } from '../../managers/kubernetes/node-files.js';
import { kubeconfigCredentials, tokenKubeconfig } from '../kubeconfig.js';
import { binaryVersion } from './sim-binaries.js';
import { type SimClusterRegistry, type SimCredentials, SimRefusal } from './sim-kubernetes.js';

export const SIMULATED_KUBECONFIG_NOTE = 'SIMULATED cluster (Edgeplane SimDevice): no real API server listens at this address.';

export interface SimUnitContext {
  root: string;
  /** Where the simulation keeps its own records (default `root`; a writable directory when `root` is a read-only OS). */
  stateRoot?: string;
  registry: SimClusterRegistry;
  /** A warning the real service would log (the simulated journal: SimServiceManager.journal). */
  warn(line: string): void;
}

export interface SimUnit {
  start(ctx: SimUnitContext): Promise<void>;
  stop(ctx: SimUnitContext): Promise<void>;
}

export async function readDeviceFile(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(join(root, path), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function writeDeviceFile(root: string, path: string, content: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content, { mode: 0o600 });
}

/**
 * The version of the distribution binary present (sim-binaries.ts): the installed artifact's, the
 * booted image's, or for an image that records none the version first configured on it. The
 * agent's record is read only for that last case, never to follow a later version change.
 */
export async function installedVersion(root: string, distribution: Distribution, stateRoot = root): Promise<string> {
  return binaryVersion(root, distribution, stateRoot, async () => {
    const record = parse((await readDeviceFile(root, KUBERNETES_RECORD)) ?? '{}') as { distribution?: string; version?: string } | null;
    if (record?.distribution !== distribution || !record.version) return undefined;
    return record.version.startsWith('v') ? record.version : `v${record.version}`;
  });
}

export function parseTaintText(text: string): Taint {
  const m = String(text).match(/^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/);
  if (!m) throw new SimRefusal(`invalid taint "${text}": want key[=value]:Effect`, false);
  return m[2] ? { key: m[1], value: m[2], effect: m[3] as Taint['effect'] } : { key: m[1], effect: m[3] as Taint['effect'] };
}

export function parseLabelList(items: unknown): Record<string, string> {
  const list = Array.isArray(items) ? items : typeof items === 'string' ? items.split(',') : [];
  const out: Record<string, string> = {};
  for (const raw of list) {
    const item = String(raw).trim();
    if (!item) continue;
    const i = item.indexOf('=');
    if (i < 0) out[item] = '';
    else out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

export async function writeKubeconfig(root: string, path: string, creds: SimCredentials, user: string): Promise<void> {
  await writeDeviceFile(root, path, tokenKubeconfig({ ...creds, user, comment: SIMULATED_KUBECONFIG_NOTE }));
}

/** Marks the node behind a kubeconfig Ready / NotReady (the simulated kubelet posting its status). */
export async function setKubeletReady(ctx: SimUnitContext, kubeconfigPath: string, ready: boolean, kubeletVersion?: string): Promise<void> {
  const text = await readDeviceFile(ctx.root, kubeconfigPath);
  if (!text) return;
  const creds = kubeconfigCredentials(text);
  if (!creds.token) return;
  await ctx.registry.setNodeReady(
    { server: creds.server, token: creds.token, clusterName: '' },
    ready,
    ready ? 'kubelet is posting ready status' : 'Kubelet stopped posting node status.',
    kubeletVersion,
  );
}

/** k3s / rke2 `server` and `agent`: config.yaml keys as the real binaries read them. */
function rancherUnit(distribution: 'k3s' | 'rke2', role: 'control-plane' | 'worker'): SimUnit {
  const dir = `/etc/rancher/${distribution}`;
  const kubeletKubeconfig = `/var/lib/rancher/${distribution}/agent/kubelet.kubeconfig`;
  return {
    async start(ctx) {
      const text = await readDeviceFile(ctx.root, `${dir}/config.yaml`);
      if (text === undefined) throw new SimRefusal(`${dir}/config.yaml not found (the simulation needs the written configuration)`, false);
      const config = acceptedConfig(distribution, role, (parse(text) ?? {}) as Record<string, unknown>, ctx);
      const version = await installedVersion(ctx.root, distribution, ctx.stateRoot);
      const name = String(config['node-name'] ?? '');
      if (!name) throw new SimRefusal('node-name is required by the simulation', false);
      const defaults: Record<string, string> =
        role === 'control-plane' ? { 'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/etcd': 'true' } : {};
      const node = {
        name,
        role,
        labels: { ...defaults, ...parseLabelList(config['node-label']) },
        taints: (Array.isArray(config['node-taint']) ? config['node-taint'] : config['node-taint'] ? [config['node-taint']] : []).map((t) =>
          parseTaintText(String(t)),
        ),
        kubeletVersion: version,
      };
      const token = String(config.token ?? '');
      const server = config.server ? String(config.server) : undefined;
      if (role === 'worker') {
        // k3s/rke2 agent: both are required flags of the agent subcommand.
        if (!server) throw new SimRefusal('--server is required', false);
        if (!token) throw new SimRefusal('--token is required', false);
      } else if (token) {
        // pkg/util/token.go NormalizeToken runs when any server starts (init or join).
        const problem = rulesFor(distribution).serverTokenProblem(token);
        if (problem) throw new SimRefusal(`starting kubernetes: preparing server: ${problem}`, false);
      }
      // k3s initializes with cluster-init (or as a lone server); rke2 initializes when no server is given.
      const initializing = role === 'control-plane' && !server;
      let result: { admin?: SimCredentials; node: SimCredentials };
      if (initializing) {
        const sans = Array.isArray(config['tls-san']) ? config['tls-san'] : config['tls-san'] ? [config['tls-san']] : [];
        if (sans.length === 0) throw new SimRefusal('tls-san is required by the simulation to know the cluster endpoint', false);
        if (!token) throw new SimRefusal('token is required by the simulation', false);
        result = await ctx.registry.init({
          distribution,
          version,
          host: String(sans[0]),
          apiPort: Number(config['https-listen-port'] ?? 6443),
          token,
          // k3s and rke2 name the cluster 'default' in the kubeconfigs they write.
          clusterName: 'default',
          node,
          bundledCni: bundledCni(distribution, config),
        });
      } else {
        if (!server) throw new SimRefusal('server is required for an agent', false);
        result = await ctx.registry.join({ distribution, server, token, node });
      }
      if (result.admin) await writeKubeconfig(ctx.root, `${dir}/${distribution}.yaml`, result.admin, 'default');
      await writeKubeconfig(ctx.root, kubeletKubeconfig, result.node, `system:node:${name}`);
      await setKubeletReady(ctx, kubeletKubeconfig, true);
    },
    async stop(ctx) {
      await setKubeletReady(ctx, kubeletKubeconfig, false);
    },
  };
}

/**
 * The config keys the service takes: an unknown key (or a server-only key on an agent) is skipped
 * with upstream's warning; a value of the wrong type stops the service, as the flag parser does.
 */
function acceptedConfig(distribution: 'k3s' | 'rke2', role: 'control-plane' | 'worker', config: Record<string, unknown>, ctx: SimUnitContext) {
  const table = distribution === 'k3s' ? K3S_CONFIG_KEYS : RKE2_CONFIG_KEYS;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    const rule = table[key];
    if (!rule || (rule.role === 'server' && role === 'worker')) {
      ctx.warn(`level=warning msg="Unknown flag --${key} found in config.yaml, skipping"`);
      continue;
    }
    const problem = rulesFor(distribution).configProblems({ [key]: value })[0];
    if (problem) throw new SimRefusal(`invalid value for --${key}: ${problem.message}`, false);
    out[key] = value;
  }
  return out;
}

/** The CNI k3s/rke2 run themselves with this server configuration (undefined: none). */
function bundledCni(distribution: 'k3s' | 'rke2', config: Record<string, unknown>): string | undefined {
  if (distribution === 'k3s') return config['flannel-backend'] === 'none' ? undefined : 'flannel';
  const wanted = Array.isArray(config.cni) ? config.cni.map(String) : config.cni ? String(config.cni).split(',') : [rulesFor('rke2').defaultCni ?? 'canal'];
  return wanted.find((c) => rulesFor('rke2').bundledCnis.includes(c));
}

/** kubelet of a kubeadm node: it only posts status once kubeadm init/join wrote kubelet.conf. */
const kubeletUnit: SimUnit = {
  async start(ctx) {
    // A kubelet posts the version of its own binary (a new image may carry another one).
    const version = await installedVersion(ctx.root, 'kubeadm', ctx.stateRoot).catch(() => undefined);
    await setKubeletReady(ctx, '/etc/kubernetes/kubelet.conf', true, version);
  },
  async stop(ctx) {
    await setKubeletReady(ctx, '/etc/kubernetes/kubelet.conf', false);
  },
};

/** Simulated units by service name; any other service is simulated as a process that just runs. */
export const SIM_UNITS: Record<string, SimUnit> = {
  k3s: rancherUnit('k3s', 'control-plane'),
  'k3s-agent': rancherUnit('k3s', 'worker'),
  'rke2-server': rancherUnit('rke2', 'control-plane'),
  'rke2-agent': rancherUnit('rke2', 'worker'),
  kubelet: kubeletUnit,
};
