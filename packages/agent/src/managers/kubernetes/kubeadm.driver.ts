import { createHash } from 'node:crypto';
import { type KubernetesSpec, kubeadmApiVersion, type Taint } from '@edgeplane/protocol';
import { stringify } from 'yaml';
import { deepMerge, effectiveTaints, isPlainObject, type KubernetesDriver, labelPairs } from './driver.js';
import { API_SERVER_PORT, hostPort, joinUrl, parseEndpoint } from './endpoint.js';

/**
 * kubeadm: one YAML file with the documents kubeadm's `--config` takes
 * (https://kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/). The init node gets
 * InitConfiguration + ClusterConfiguration and runs `kubeadm init --upload-certs`; every other node
 * gets a JoinConfiguration and runs `kubeadm join`. kubeadm starts the `kubelet` service itself.
 */
export const KUBEADM_CONFIG = '/etc/edgeplane/kubeadm/kubeadm.yaml';
export const KUBEADM_MARKER = '/etc/edgeplane/kubeadm/bootstrapped';
/** Records the last certificate upload request (spec.uploadCerts) the init node carried out. */
export const KUBEADM_CERTS_MARKER = '/etc/edgeplane/kubeadm/certs-uploaded';

/** The config API version (v1beta4 from kubeadm 1.31, v1beta3 before): @edgeplane/protocol kubernetes/kubeadm.ts. */
export { kubeadmApiVersion };

const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * kubeadm bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) derived from the cluster join secret, so the
 * init node and every joiner compute the same token from the secret the server hands out and no
 * extra round trip is needed. One-way: the token does not reveal the secret.
 */
export function bootstrapToken(joinSecret: string): string {
  const h = createHash('sha256').update(`edgeplane/kubeadm-bootstrap-token\0${joinSecret}`).digest();
  const chars = [...h.subarray(0, 22)].map((b) => TOKEN_ALPHABET[b % TOKEN_ALPHABET.length]).join('');
  return `${chars.slice(0, 6)}.${chars.slice(6, 22)}`;
}

/** Key that encrypts the control-plane certificates `--upload-certs` stores in the cluster (32 bytes, hex). */
export function certificateKey(joinSecret: string): string {
  return createHash('sha256').update(`edgeplane/kubeadm-certificate-key\0${joinSecret}`).digest('hex');
}

function kubernetesVersion(version: string): string {
  return version.startsWith('v') ? version : `v${version}`;
}

function nodeRegistration(spec: KubernetesSpec, v1beta4: boolean): Record<string, unknown> {
  // An explicit (possibly empty) list: without `taints` kubeadm taints every control-plane node.
  const taints: Taint[] = effectiveTaints(spec);
  const reg: Record<string, unknown> = { name: spec.nodeName, taints: taints.map((t) => ({ ...t })) };
  const labels = labelPairs(spec.nodeLabels);
  if (labels.length > 0) {
    const value = labels.join(',');
    // v1beta4 turned extra args from a map into a list of name/value pairs.
    reg.kubeletExtraArgs = v1beta4 ? [{ name: 'node-labels', value }] : { 'node-labels': value };
  }
  return reg;
}

/** v1beta4 takes extra args as `[{name, value}]`; a profile written with the older map form is converted. */
function argList(args: Record<string, unknown>): { name: string; value: string }[] {
  return Object.keys(args)
    .sort()
    .map((name) => ({ name, value: String(args[name]) }));
}

function profileSans(config: Record<string, unknown>): string[] {
  const api = config.apiServer;
  return isPlainObject(api) && Array.isArray(api.certSANs) ? api.certSANs.map(String) : [];
}

function initDocuments(spec: KubernetesSpec, apiVersion: string, v1beta4: boolean): Record<string, unknown>[] {
  const token = spec.token ?? '';
  const { host, port } = parseEndpoint(spec.controlPlaneEndpoint);
  const init = {
    apiVersion,
    kind: 'InitConfiguration',
    bootstrapTokens: [
      {
        token: bootstrapToken(token),
        description: `Edgeplane join token for cluster ${spec.cluster}`,
        // Never expires: nodes join (and re-join after a fallback) long after the cluster was created.
        // The server rotates the join secret to revoke it.
        ttl: '0s',
        usages: ['signing', 'authentication'],
        groups: ['system:bootstrappers:kubeadm:default-node-token'],
      },
    ],
    certificateKey: certificateKey(token),
    nodeRegistration: nodeRegistration(spec, v1beta4),
  };
  const managed = {
    apiVersion,
    kind: 'ClusterConfiguration',
    clusterName: spec.cluster,
    kubernetesVersion: kubernetesVersion(spec.version),
    controlPlaneEndpoint: hostPort(host, port ?? API_SERVER_PORT),
    networking: { podSubnet: spec.podCidr, serviceSubnet: spec.serviceCidr },
    // The endpoint host first, then any SANs the profile adds (a VIP, a DNS name).
    apiServer: { certSANs: [...new Set([host, ...profileSans(spec.config)])] },
  };
  // Profile config values are ClusterConfiguration fields (etcd, apiServer.extraArgs, ...); ours win.
  const { apiVersion: _a, kind: _k, ...merged } = deepMerge(spec.config, managed);
  if (v1beta4) {
    for (const component of ['apiServer', 'controllerManager', 'scheduler']) {
      const c = merged[component];
      if (isPlainObject(c) && isPlainObject(c.extraArgs)) merged[component] = { ...c, extraArgs: argList(c.extraArgs) };
    }
  }
  return [init, { apiVersion, kind: 'ClusterConfiguration', ...merged }];
}

function joinDocument(spec: KubernetesSpec, apiVersion: string, v1beta4: boolean): Record<string, unknown> {
  const token = spec.token ?? '';
  const api = new URL(joinUrl(spec.controlPlaneEndpoint, spec.server));
  const join: Record<string, unknown> = {
    apiVersion,
    kind: 'JoinConfiguration',
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: api.host,
        token: bootstrapToken(token),
        // The CA hash is not known before the first node exists; the token (derived from the join
        // secret only the server and the nodes hold) authenticates discovery instead.
        unsafeSkipCAVerification: true,
      },
    },
    nodeRegistration: nodeRegistration(spec, v1beta4),
  };
  if (spec.role === 'control-plane') join.controlPlane = { certificateKey: certificateKey(token) };
  return join;
}

export const kubeadmDriver: KubernetesDriver = {
  distribution: 'kubeadm',
  adminKubeconfig: '/etc/kubernetes/admin.conf',
  restartAppliesConfig: false,
  charts: 'helm-cli',
  files(spec) {
    const apiVersion = kubeadmApiVersion(spec.version);
    const v1beta4 = apiVersion.endsWith('v1beta4');
    const docs = spec.init ? initDocuments(spec, apiVersion, v1beta4) : [joinDocument(spec, apiVersion, v1beta4)];
    const header = `# Written by the Edgeplane agent for cluster ${spec.cluster}; read by kubeadm ${spec.init ? 'init' : 'join'}.\n`;
    return [{ path: KUBEADM_CONFIG, content: header + docs.map((d) => stringify(d)).join('---\n'), mode: 0o600 }];
  },
  serviceName() {
    return 'kubelet';
  },
  nodeKubeconfig(spec) {
    // kubeadm writes admin.conf on every control-plane node; workers only have the kubelet's kubeconfig.
    return spec.role === 'control-plane' ? '/etc/kubernetes/admin.conf' : '/etc/kubernetes/kubelet.conf';
  },
  reset() {
    // kubeadm reset removes /etc/kubernetes, the kubelet's state and a local etcd member.
    return { command: { command: 'kubeadm', args: ['reset', '--force'] }, paths: ['/etc/edgeplane/kubeadm'] };
  },
  bootstrap(spec) {
    const args = spec.init ? ['init', '--config', KUBEADM_CONFIG, '--upload-certs'] : ['join', '--config', KUBEADM_CONFIG];
    return { command: 'kubeadm', args, marker: KUBEADM_MARKER };
  },
  uploadCerts(spec) {
    // The InitConfiguration in the config file carries the certificate key the joiners derive too.
    if (!spec.init || !spec.uploadCerts) return undefined;
    return { command: 'kubeadm', args: ['init', 'phase', 'upload-certs', '--upload-certs', '--config', KUBEADM_CONFIG], marker: KUBEADM_CERTS_MARKER };
  },
};
