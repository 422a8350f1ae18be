import { z } from 'zod';
import { VariableName } from './cluster-profile.js';
import { UpgradeStatus, UpgradeStrategy } from './cluster-upgrade.js';
import { Digest, NodeRole, Slot, Taint } from './host-spec.js';
import { Condition, Labels, Name, resourceInputSchema, resourceSchema } from './meta.js';
import { PositiveInt32 } from './text.js';
import { VirtualizedClusterFields } from './virt.js';

/** Annotation the cluster controller puts on every host that belongs to a cluster. */
export const CLUSTER_ANNOTATION = 'edgeplane.io/cluster';

const Cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-fA-F:]+\/\d{1,3}$/, 'must be a CIDR, e.g. 10.42.0.0/16');

/** `labels`: extra Kubernetes node labels for this node (VM placement labels of virtualized clusters). */
export const ClusterNode = z.object({ host: Name, role: NodeRole, labels: Labels.optional() }).strict();
export type ClusterNode = z.infer<typeof ClusterNode>;

export const ClusterSpec = z
  .object({
    /** `native`: each host is one node. `virtualized`: the nodes are `vms` on the libvirt `appliance` (then `nodes` stays empty). */
    type: z.enum(['native', 'virtualized']).default('native'),
    profile: z.object({ name: Name, revision: PositiveInt32 }).strict(),
    /** The Site this cluster runs at (maintenance windows, timezone); default: the site of its first node's host. */
    site: Name.optional(),
    nodes: z.array(ClusterNode).max(1000).default([]),
    ...VirtualizedClusterFields,
    /**
     * The cluster's API endpoint: a DNS name or VIP (host, host:port or https://host:port) that
     * survives node changes (`vip` makes the cluster serve one itself). Default: the init node's
     * address (first IPv4 of a non-virtual interface), port 6443; that node cannot leave the cluster.
     */
    controlPlaneEndpoint: z.string().min(1).max(256).optional(),
    podCidr: Cidr.default('10.42.0.0/16'),
    serviceCidr: Cidr.default('10.43.0.0/16'),
    nodeLabels: Labels.default({}),
    nodeTaints: z.array(Taint).max(50).default([]),
    /** Whether control-plane nodes also run workloads. */
    controlPlaneSchedulable: z.boolean().default(true),
    /** An even number of control-plane nodes risks etcd quorum; refused unless this is set. */
    allowEvenControlPlanes: z.boolean().optional(),
    /** Values for the profile's variables. */
    variables: z.record(VariableName, z.string().max(4096)).default({}),
    /** How a changed revision or values roll through the nodes (docs/architecture.md "Cluster upgrades"). */
    upgradeStrategy: UpgradeStrategy.optional(),
    /**
     * A built-in VIP for the control plane (k3s and rke2): the server adds kube-vip (ARP mode, a
     * DaemonSet on the control-plane nodes, docs/kubernetes.md) to the init node's add-ons and the
     * VIP becomes the endpoint. kubeadm needs the VIP before `kubeadm init` and is refused.
     */
    vip: z
      .object({
        address: z.ipv4(),
        /** The interface kube-vip announces the VIP on; default: the one holding the default route. */
        interface: z
          .string()
          .regex(/^[a-zA-Z0-9._-]{1,15}$/)
          .optional(),
        /** The kube-vip image (mirror it for air-gapped sites), e.g. <registry>/kube-vip/kube-vip:v0.8.9. */
        image: z.string().min(1).max(512),
      })
      .strict()
      .optional(),
  })
  .strict();
export type ClusterSpec = z.infer<typeof ClusterSpec>;

/** Scaling: a running cluster whose added nodes are still joining (the others are Ready). */
export const ClusterPhase = z.enum(['Provisioning', 'Running', 'Scaling', 'Degraded', 'Failed', 'Deleting']);
export type ClusterPhase = z.infer<typeof ClusterPhase>;

export const ClusterNodeStatus = z.object({
  host: Name,
  role: NodeRole,
  /** Pending (no spec yet), Provisioning, Ready, NotReady or Failed. */
  phase: z.enum(['Pending', 'Provisioning', 'Ready', 'NotReady', 'Failed']),
  osImageDigest: Digest.optional(),
  bootedSlot: Slot.optional(),
  kubernetesVersion: z.string().optional(),
  ready: z.boolean(),
  message: z.string().optional(),
});
export type ClusterNodeStatus = z.infer<typeof ClusterNodeStatus>;

export const ClusterStatus = z.object({
  phase: ClusterPhase.optional(),
  conditions: z.array(Condition).default([]),
  nodes: z.array(ClusterNodeStatus).default([]),
  /** How many nodes the spec asks for: spec.nodes, or one per VM of a virtualized cluster (filled in on every read). */
  desiredNodes: z.number().int().optional(),
  observedGeneration: z.number().int().optional(),
  /** Where the Kubernetes API answers: https://host:port. */
  controlPlaneEndpoint: z.string().optional(),
  /**
   * Where that endpoint came from: `spec.controlPlaneEndpoint` (a DNS name or VIP that survives node
   * changes), or the init node's address and the interface it was taken from (virtual interfaces
   * such as docker0, cni0, flannel.*, veth*, br-* are skipped).
   */
  controlPlaneEndpointFrom: z.string().optional(),
  /** True once the admin kubeconfig is stored (GET .../clusters/<name>/kubeconfig). */
  kubeconfigAvailable: z.boolean().optional(),
  /** The profile revision every node runs (set once all nodes run it; unchanged while an upgrade rolls). */
  profileRevision: z.number().int().optional(),
  /** The latest upgrade and its per-node progress. */
  upgrade: UpgradeStatus.optional(),
});
export type ClusterStatus = z.infer<typeof ClusterStatus>;

export const Cluster = resourceSchema('Cluster', ClusterSpec, ClusterStatus);
export type Cluster = z.infer<typeof Cluster>;
export const ClusterInput = resourceInputSchema('Cluster', ClusterSpec);
