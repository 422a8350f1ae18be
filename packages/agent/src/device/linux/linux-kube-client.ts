import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Taint } from '@edgeplane/protocol';
import { type KubeNode, type KubeObject, KubernetesApiError, type KubernetesClient } from '../kube-client.js';

type ClientNode = typeof import('@kubernetes/client-node');

// Loaded on first use: the library is large and most agent runs (and tests) never talk to Kubernetes.
let library: Promise<ClientNode> | undefined;
function load(): Promise<ClientNode> {
  library ??= import('@kubernetes/client-node');
  return library;
}

/** A real Kubernetes API client (@kubernetes/client-node) using a kubeconfig file under the device root. */
export class LinuxKubernetesClient implements KubernetesClient {
  constructor(
    private readonly root: string,
    private readonly kubeconfigPath: string,
  ) {}

  async readNode(name: string): Promise<KubeNode | undefined> {
    const k8s = await load();
    const api = (await this.config()).makeApiClient(k8s.CoreV1Api);
    try {
      const node = await api.readNode({ name });
      const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
      return {
        name,
        ready: ready?.status === 'True',
        message: ready?.message,
        kubeletVersion: node.status?.nodeInfo?.kubeletVersion ?? '',
        labels: node.metadata?.labels ?? {},
        taints: (node.spec?.taints ?? []).map((t) => ({ key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect as Taint['effect'] })),
      };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw apiError(err, `read node ${name}`);
    }
  }

  async apply(object: KubeObject, fieldManager: string): Promise<KubeObject> {
    const k8s = await load();
    const api = k8s.KubernetesObjectApi.makeApiClient(await this.config());
    try {
      // force: the profile owns these fields even when someone edited them by hand (kubectl apply --server-side --force-conflicts).
      return (await api.patch(object, undefined, undefined, fieldManager, true, k8s.PatchStrategy.ServerSideApply)) as KubeObject;
    } catch (err) {
      throw apiError(err, `apply ${object.kind} ${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name}`);
    }
  }

  /** kubectl delete node: gone or never there both resolve (the caller only needs it absent). */
  async deleteNode(name: string): Promise<void> {
    const k8s = await load();
    const api = (await this.config()).makeApiClient(k8s.CoreV1Api);
    try {
      await api.deleteNode({ name });
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw apiError(err, `delete node ${name}`);
    }
  }

  /** kubectl cordon / uncordon: a merge patch of spec.unschedulable. */
  async cordon(name: string, unschedulable: boolean): Promise<void> {
    const k8s = await load();
    const api = (await this.config()).makeApiClient(k8s.CoreV1Api);
    try {
      await api.patchNode({ name, body: { spec: { unschedulable } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    } catch (err) {
      throw apiError(err, `${unschedulable ? 'cordon' : 'uncordon'} node ${name}`);
    }
  }

  /**
   * One round of kubectl drain: an Eviction for every pod on the node except DaemonSet pods and
   * static (mirror) pods, which drain leaves alone. A 429 is a PodDisruptionBudget refusing for now.
   */
  async evictPods(name: string): Promise<{ evicted: number; remaining: number }> {
    const k8s = await load();
    const api = (await this.config()).makeApiClient(k8s.CoreV1Api);
    let pods: Awaited<ReturnType<typeof api.listPodForAllNamespaces>>['items'];
    try {
      pods = (await api.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` })).items;
    } catch (err) {
      throw apiError(err, `list pods on node ${name}`);
    }
    const movable = pods.filter(
      (p) =>
        !p.metadata?.ownerReferences?.some((o) => o.kind === 'DaemonSet') &&
        !p.metadata?.annotations?.['kubernetes.io/config.mirror'] &&
        p.status?.phase !== 'Succeeded' &&
        p.status?.phase !== 'Failed',
    );
    let evicted = 0;
    for (const pod of movable) {
      const namespace = pod.metadata?.namespace ?? 'default';
      const podName = pod.metadata?.name ?? '';
      try {
        await api.createNamespacedPodEviction({
          name: podName,
          namespace,
          body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: podName, namespace } },
        });
        evicted++;
      } catch (err) {
        const status = statusOf(err);
        if (status === 429 || status === 404) continue; // budget says not now / already gone
        throw apiError(err, `evict pod ${namespace}/${podName}`);
      }
    }
    return { evicted, remaining: movable.length - evicted };
  }

  private async config() {
    const k8s = await load();
    const file = join(this.root, this.kubeconfigPath);
    try {
      await access(file);
    } catch {
      throw new KubernetesApiError(`kubeconfig ${this.kubeconfigPath} does not exist yet`);
    }
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(file);
    return kc;
  }
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function apiError(err: unknown, what: string): KubernetesApiError {
  const status = statusOf(err);
  const body = (err as { body?: unknown }).body;
  let detail = (err as Error).message;
  if (typeof body === 'string') {
    try {
      detail = (JSON.parse(body) as { message?: string }).message ?? detail;
    } catch {
      /* not JSON: keep the message */
    }
  }
  return new KubernetesApiError(`${what}: ${detail}`, status);
}
