import type { Addon, ClusterSpec } from '@edgeplane/protocol';
import { stringify } from 'yaml';

type Vip = NonNullable<ClusterSpec['vip']>;

/** Name of the add-on the server puts first on the init node of a cluster with `spec.vip`. */
export const KUBE_VIP_ADDON = 'kube-vip';

/**
 * kube-vip serving the control-plane VIP in ARP mode as a DaemonSet on the control-plane nodes, as
 * kube-vip's documentation lays it out for k3s (kube-vip.io/docs/usage/k3s: ServiceAccount, RBAC
 * for leases/nodes/services, a hostNetwork DaemonSet with NET_ADMIN and NET_RAW, `manager` with
 * vip_arp, cp_enable and leader election). The API server on each control-plane node listens on
 * 6443; whichever node holds the lease answers ARP for the VIP. k3s and rke2 only: kubeadm needs the
 * VIP before `kubeadm init` (a static pod), which an add-on cannot give.
 */
export function kubeVipAddon(vip: Vip): Addon {
  const env: Record<string, string> = {
    vip_arp: 'true',
    port: '6443',
    ...(vip.interface ? { vip_interface: vip.interface } : {}),
    vip_cidr: '32',
    cp_enable: 'true',
    cp_namespace: 'kube-system',
    vip_leaderelection: 'true',
    vip_leasename: 'plndr-cp-lock',
    address: vip.address,
  };
  const docs = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kube-vip', namespace: 'kube-system' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'kube-vip-role' },
      rules: [
        { apiGroups: [''], resources: ['services/status'], verbs: ['update'] },
        { apiGroups: [''], resources: ['services', 'endpoints'], verbs: ['list', 'get', 'watch', 'update'] },
        { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'get', 'watch', 'update', 'patch'] },
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['list', 'get', 'watch', 'update', 'create'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'get', 'watch', 'update'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'kube-vip-binding' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kube-vip-role' },
      subjects: [{ kind: 'ServiceAccount', name: 'kube-vip', namespace: 'kube-system' }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'kube-vip-ds', namespace: 'kube-system', labels: { 'app.kubernetes.io/name': 'kube-vip-ds' } },
      spec: {
        selector: { matchLabels: { 'app.kubernetes.io/name': 'kube-vip-ds' } },
        template: {
          metadata: { labels: { 'app.kubernetes.io/name': 'kube-vip-ds' } },
          spec: {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [{ matchExpressions: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists' }] }],
                },
              },
            },
            containers: [
              {
                name: 'kube-vip',
                image: vip.image,
                args: ['manager'],
                env: Object.entries(env).map(([name, value]) => ({ name, value })),
                securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } },
              },
            ],
            hostNetwork: true,
            serviceAccountName: 'kube-vip',
            tolerations: [
              { effect: 'NoSchedule', operator: 'Exists' },
              { effect: 'NoExecute', operator: 'Exists' },
            ],
          },
        },
      },
    },
  ];
  return { name: KUBE_VIP_ADDON, manifest: docs.map((d) => stringify(d)).join('---\n') };
}
