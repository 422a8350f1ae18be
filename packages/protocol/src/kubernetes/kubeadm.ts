/**
 * kubeadm rules. Sources (kubernetes v1.28 to v1.31):
 *  - config API: cmd/kubeadm/app/apis/kubeadm/v1beta3 (kubeadm 1.22+) and v1beta4 (added in 1.31),
 *    registered in cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go; a document of a version the binary
 *    does not know is refused ("no kind ... is registered for version ...");
 *  - unknown fields in a config document are warned about ("strict decoding error: unknown field")
 *    and ignored (cmd/kubeadm/app/util/config/strict: VerifyUnmarshalStrict);
 *  - bootstrap tokens: k8s.io/cluster-bootstrap/token/api/types.go BootstrapTokenPattern;
 *  - certificate key: cmd/kubeadm/app/constants/constants.go CertificateKeySize = 32 (hex-encoded);
 *    the uploaded `kubeadm-certs` Secret hangs off a token of DefaultCertTokenDuration = 2 h
 *    (cmd/kubeadm/app/phases/copycerts/copycerts.go createShortLivedBootstrapToken); after that a
 *    control-plane join fails with `Secret "kubeadm-certs" was not found ... might have expired` until
 *    `kubeadm init phase upload-certs --upload-certs` runs on an existing control plane;
 *  - join: cmd/kubeadm/app/apis/kubeadm/validation (token discovery needs caCertHashes or
 *    unsafeSkipCAVerification) and cmd/kubeadm/app/cmd/join.go (a control-plane join needs a
 *    controlPlaneEndpoint in the cluster's ClusterConfiguration);
 *  - CNI: kubeadm installs none; nodes stay NotReady until one is applied (kubernetes.io docs
 *    "Creating a cluster with kubeadm": "Installing a Pod network add-on");
 *  - etcd members: `kubeadm reset` runs phase remove-etcd-member on a control-plane node
 *    (cmd/kubeadm/app/cmd/phases/reset/removeetcdmember.go); the Node object stays and is deleted with the API.
 */
import type { ConfigProblem, DistributionRules } from './rules.js';

export const KUBEADM_BOOTSTRAP_TOKEN_PATTERN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
export const KUBEADM_CERTIFICATE_KEY_PATTERN = /^[a-f0-9]{64}$/;
/** How long certificates uploaded by `kubeadm init --upload-certs` (or `init phase upload-certs`) stay downloadable. */
export const KUBEADM_UPLOADED_CERTS_TTL_MS = 2 * 60 * 60_000;

export type KubeadmApiVersion = 'kubeadm.k8s.io/v1beta3' | 'kubeadm.k8s.io/v1beta4';

function minorOf(version: string): number | undefined {
  const m = version.match(/^v?1\.(\d+)\./);
  return m ? Number(m[1]) : undefined;
}

/** The config API a kubeadm of `version` is written for: v1beta4 from 1.31, v1beta3 before. */
export function kubeadmApiVersion(version: string): KubeadmApiVersion {
  const minor = minorOf(version);
  return minor !== undefined && minor >= 31 ? 'kubeadm.k8s.io/v1beta4' : 'kubeadm.k8s.io/v1beta3';
}

/** Whether a kubeadm binary of `version` decodes `apiVersion` (v1beta3: 1.22 and later; v1beta4: 1.31 and later). */
export function kubeadmReadsApiVersion(version: string, apiVersion: string): boolean {
  const minor = minorOf(version);
  if (minor === undefined) return false;
  if (apiVersion === 'kubeadm.k8s.io/v1beta3') return minor >= 22;
  if (apiVersion === 'kubeadm.k8s.io/v1beta4') return minor >= 31;
  return false;
}

/** kubeadm's refusal of a document it has no scheme for, word for word. */
export function kubeadmUnknownKindMessage(kind: string, apiVersion: string): string {
  return `no kind "${kind}" is registered for version "${apiVersion}" in scheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"`;
}

/** The control-plane join failure once the uploaded certificates expired (retryable: an upload fixes it). */
export const KUBEADM_CERTS_EXPIRED_MESSAGE =
  'error downloading certs: error downloading the secret: Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one';
export const KUBEADM_CERTS_EXPIRED = /Secret "kubeadm-certs" was not found/;

/**
 * kubeadm failures that the same configuration can never get past: a token or certificate key the
 * cluster does not know, a config the binary cannot read. Retrying cannot help; the server must send
 * another spec. Everything else (nothing listens yet, expired uploaded certs that a re-upload
 * renews, a timeout) is retryable.
 */
export const KUBEADM_FATAL =
  /invalid for this cluster|Unauthorized|error decoding certs|certificate key|is registered for version|was not of the form|can be unsafe|doesn't have a stable controlPlaneEndpoint/i;

/** ClusterConfiguration fields (v1beta3 and v1beta4); a profile's kubeadm config holds these. */
export const KUBEADM_CLUSTER_CONFIGURATION_FIELDS: Record<string, { since?: KubeadmApiVersion; effect: 'not-applied' | 'new-cluster' }> = {
  etcd: { effect: 'new-cluster' },
  networking: { effect: 'new-cluster' },
  kubernetesVersion: { effect: 'not-applied' },
  controlPlaneEndpoint: { effect: 'new-cluster' },
  apiServer: { effect: 'not-applied' },
  controllerManager: { effect: 'not-applied' },
  scheduler: { effect: 'not-applied' },
  dns: { effect: 'not-applied' },
  proxy: { since: 'kubeadm.k8s.io/v1beta4', effect: 'not-applied' },
  certificatesDir: { effect: 'new-cluster' },
  imageRepository: { effect: 'not-applied' },
  featureGates: { effect: 'not-applied' },
  clusterName: { effect: 'new-cluster' },
  encryptionAlgorithm: { since: 'kubeadm.k8s.io/v1beta4', effect: 'new-cluster' },
  certificateValidityPeriod: { since: 'kubeadm.k8s.io/v1beta4', effect: 'not-applied' },
  caCertificateValidityPeriod: { since: 'kubeadm.k8s.io/v1beta4', effect: 'new-cluster' },
};

function configProblems(config: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (key === 'apiVersion' || key === 'kind') continue; // the driver writes its own
    const field = KUBEADM_CLUSTER_CONFIGURATION_FIELDS[key];
    if (!field) {
      problems.push({ key, message: `ClusterConfiguration has no field "${key}" (kubeadm would warn "strict decoding error: unknown field" and ignore it)` });
      continue;
    }
    const scalar =
      key === 'kubernetesVersion' || key === 'controlPlaneEndpoint' || key === 'certificatesDir' || key === 'imageRepository' || key === 'clusterName';
    if (scalar ? typeof value !== 'string' : typeof value !== 'object' && !(key.endsWith('Period') || key === 'encryptionAlgorithm'))
      problems.push({ key, message: `ClusterConfiguration.${key} ${scalar ? 'is a string' : 'is an object'}` });
  }
  return problems;
}

export const kubeadmRules: DistributionRules = {
  distribution: 'kubeadm',
  joinPort: 6443,
  serverTokenProblem: (token) =>
    KUBEADM_BOOTSTRAP_TOKEN_PATTERN.test(token) ? undefined : `the bootstrap token "${token}" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z"`,
  bundledCnis: [],
  defaultCni: undefined,
  etcdMemberRemoval: 'kubeadm-reset',
  configProblems,
  changeEffect: (key) => KUBEADM_CLUSTER_CONFIGURATION_FIELDS[key]?.effect ?? 'not-applied',
};
