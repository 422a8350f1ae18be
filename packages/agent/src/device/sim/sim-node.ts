/** SIMULATION. Nodes of a simulated cluster (see sim-kubernetes.ts). */
import type { Taint } from '@edgeplane/protocol';
import type { KubeNode, KubeObject } from '../kube-client.js';

export interface SimNodeRegistration {
  name: string;
  role: 'control-plane' | 'worker';
  labels: Record<string, string>;
  taints: Taint[];
  kubeletVersion: string;
}

export interface SimNodeState extends SimNodeRegistration {
  /** The node's simulated kubelet runs (its service started); Ready also needs the cluster's CNI. */
  running?: boolean;
  /** What the kubelet last said about itself (Ready also depends on the CNI). */
  runningMessage?: string;
  ready: boolean;
  message: string;
  /** Bearer token of the node's kubelet credential. */
  credential: string;
  /** Cordoned. */
  unschedulable?: boolean;
}

/** The Node as the API would show it: labels, taints, the Ready condition and the kubelet version. */
export function nodeObject(n: SimNodeState): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: { ...n.labels } },
    spec: { ...(n.taints.length > 0 ? { taints: n.taints.map((t) => ({ ...t })) } : {}), ...(n.unschedulable ? { unschedulable: true } : {}) },
    status: {
      conditions: [{ type: 'Ready', status: n.ready ? 'True' : 'False', reason: n.ready ? 'KubeletReady' : 'NodeStatusUnknown', message: n.message }],
      nodeInfo: {
        kubeletVersion: n.kubeletVersion,
        kubeProxyVersion: n.kubeletVersion,
        osImage: 'Edgeplane OS (simulated)',
        containerRuntimeVersion: 'containerd://simulated',
      },
    },
  };
}

export function nodeView(n: SimNodeState): KubeNode {
  return {
    name: n.name,
    ready: n.ready,
    message: n.message,
    kubeletVersion: n.kubeletVersion,
    labels: { ...n.labels },
    taints: n.taints.map((t) => ({ ...t })),
    ...(n.unschedulable ? { unschedulable: true } : {}),
  };
}
