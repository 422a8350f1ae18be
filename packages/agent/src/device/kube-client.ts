import type { Taint } from '@edgeplane/protocol';

/** What the agent needs to know about its own Node object. */
export interface KubeNode {
  name: string;
  /** Ready condition is True. */
  ready: boolean;
  /** Message of the Ready condition (why not ready). */
  message?: string;
  kubeletVersion: string;
  labels: Record<string, string>;
  taints: Taint[];
  /** Cordoned (spec.unschedulable). */
  unschedulable?: boolean;
}

/** A Kubernetes object as applied: apiVersion, kind, metadata.name (+ namespace) and the rest. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** The API refused or could not be reached. `status` is the HTTP status when there was an answer. */
export class KubernetesApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'KubernetesApiError';
  }
}

/**
 * A Kubernetes API client authenticated with one kubeconfig file on the device. Methods reject with
 * KubernetesApiError when the kubeconfig is missing or the API refuses or cannot be reached.
 */
export interface KubernetesClient {
  /** The Node named `name`, or undefined when the API has none (not registered yet). */
  readNode(name: string): Promise<KubeNode | undefined>;
  /**
   * Server-side apply of one object: the fields `fieldManager` sets are owned by it, conflicts with
   * other managers are forced (the profile is the source of truth). Resolves with the object as stored.
   */
  apply(object: KubeObject, fieldManager: string): Promise<KubeObject>;
  /** Sets spec.unschedulable of a Node (cordon / uncordon). */
  cordon(name: string, unschedulable: boolean): Promise<void>;
  /**
   * One round of evictions of the pods on a Node (the Eviction API, which honours
   * PodDisruptionBudgets). Resolves with how many were evicted and how many pods remain.
   */
  evictPods(name: string): Promise<{ evicted: number; remaining: number }>;
  /**
   * Deletes a Node object (kubectl delete node); resolves when it is gone or was not there. A
   * kubelet's own credentials may delete only its own Node (NodeRestriction). The kubernetes
   * manager needs it to take a node out of its cluster.
   */
  deleteNode(name: string): Promise<void>;
}
