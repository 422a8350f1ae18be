/**
 * SIMULATION. Object storage of a simulated cluster's API with server-side apply semantics: each
 * field manager's last applied configuration is kept per object (keyed by apiVersion, kind,
 * namespace and name); the live object is the merge of every manager's configuration, the latest
 * applier winning conflicts (the agent always applies with force). A field a manager stops setting
 * disappears unless another manager sets it, as with real server-side apply. Like the real API
 * server it refuses kinds it does not serve (no CRD) and objects in namespaces that do not exist.
 */
import { randomUUID } from 'node:crypto';
import type { Distribution } from '@edgeplane/protocol';
import { type KubeObject, KubernetesApiError } from '../kube-client.js';

export interface StoredObject {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  uid: string;
  creationTimestamp: string;
  resourceVersion: number;
  /** Last applied configuration per field manager, in the order they last applied. */
  managers: { manager: string; config: Record<string, unknown> }[];
}

const BUILT_IN_GROUPS = new Set([
  '',
  'apps',
  'batch',
  'autoscaling',
  'policy',
  'rbac.authorization.k8s.io',
  'networking.k8s.io',
  'storage.k8s.io',
  'apiextensions.k8s.io',
  'admissionregistration.k8s.io',
  'apiregistration.k8s.io',
  'coordination.k8s.io',
  'scheduling.k8s.io',
  'node.k8s.io',
  'discovery.k8s.io',
  'certificates.k8s.io',
  'events.k8s.io',
]);

/** Groups whose CRDs k3s and rke2 install themselves (helm-controller, k3s addons). */
const RANCHER_GROUPS = new Set(['helm.cattle.io', 'k3s.cattle.io']);

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'StorageClass',
  'CSIDriver',
  'PriorityClass',
  'RuntimeClass',
  'IngressClass',
  'APIService',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
]);

const DEFAULT_NAMESPACES = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function group(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

export class SimObjectStore {
  constructor(
    private readonly objects: Record<string, StoredObject>,
    private readonly distribution: Distribution,
  ) {}

  apply(object: KubeObject, fieldManager: string): KubeObject {
    const { apiVersion, kind, metadata } = object;
    if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !isObject(metadata) || typeof metadata.name !== 'string') {
      throw new KubernetesApiError('Object is invalid: apiVersion, kind and metadata.name are required', 422);
    }
    if (!DNS_SUBDOMAIN.test(metadata.name)) throw new KubernetesApiError(`${kind} "${metadata.name}" is invalid: metadata.name must be a DNS subdomain`, 422);
    if (!this.serves(apiVersion, kind)) throw new KubernetesApiError(`no matches for kind "${kind}" in version "${apiVersion}"`, 404);
    const namespace = !CLUSTER_SCOPED.has(kind) ? (typeof metadata.namespace === 'string' ? metadata.namespace : 'default') : undefined;
    if (namespace && !DEFAULT_NAMESPACES.has(namespace) && !this.get('v1', 'Namespace', namespace)) {
      throw new KubernetesApiError(`namespaces "${namespace}" not found`, 404);
    }
    const k = this.key(apiVersion, kind, metadata.name, namespace);
    const { metadata: _m, ...body } = object;
    const config = { ...body, metadata: { ...metadata, ...(namespace ? { namespace } : {}) } };
    const existing = this.objects[k];
    const stored: StoredObject = existing ?? {
      apiVersion,
      kind,
      namespace,
      name: metadata.name,
      uid: randomUUID(),
      creationTimestamp: new Date().toISOString(),
      resourceVersion: 0,
      managers: [],
    };
    const before = existing && JSON.stringify(this.live(existing));
    stored.managers = [...stored.managers.filter((m) => m.manager !== fieldManager), { manager: fieldManager, config }];
    // An apply that changes nothing does not bump resourceVersion, as with the real API server.
    if (before !== JSON.stringify(this.live(stored))) stored.resourceVersion++;
    this.objects[k] = stored;
    return this.live(stored);
  }

  get(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject | undefined {
    const ns = CLUSTER_SCOPED.has(kind) ? undefined : (namespace ?? 'default');
    const stored = this.objects[this.key(apiVersion, kind, name, ns)];
    return stored && this.live(stored);
  }

  list(): KubeObject[] {
    return Object.keys(this.objects)
      .sort()
      .map((k) => this.live(this.objects[k]));
  }

  private serves(apiVersion: string, kind: string): boolean {
    const g = group(apiVersion);
    if (BUILT_IN_GROUPS.has(g)) return true;
    if (RANCHER_GROUPS.has(g) && this.distribution !== 'kubeadm') return true;
    // A CustomResourceDefinition applied earlier serves its group/kind/versions.
    return Object.values(this.objects).some((o) => {
      if (o.kind !== 'CustomResourceDefinition') return false;
      const spec = this.live(o).spec as { group?: string; names?: { kind?: string }; versions?: { name?: string }[] } | undefined;
      return spec?.group === g && spec.names?.kind === kind && (spec.versions ?? []).some((v) => `${g}/${v.name}` === apiVersion);
    });
  }

  private key(apiVersion: string, kind: string, name: string, namespace?: string): string {
    return `${apiVersion}/${kind}/${namespace ?? ''}/${name}`;
  }

  private live(stored: StoredObject): KubeObject {
    const merged = stored.managers.reduce<Record<string, unknown>>((acc, m) => merge(acc, m.config), {});
    const metadata = {
      ...(merged.metadata as Record<string, unknown>),
      name: stored.name,
      ...(stored.namespace ? { namespace: stored.namespace } : {}),
      uid: stored.uid,
      resourceVersion: String(stored.resourceVersion),
      creationTimestamp: stored.creationTimestamp,
      managedFields: stored.managers.map((m) => ({ manager: m.manager, operation: 'Apply', apiVersion: stored.apiVersion })),
    };
    return { ...merged, apiVersion: stored.apiVersion, kind: stored.kind, metadata } as KubeObject;
  }
}
