import type { Distribution } from '@edgeplane/protocol';

/**
 * The systemd units of each Kubernetes distribution, as the distributions' own installers write
 * them, for both places Edgeplane installs a distribution: an Edgeplane OS image (binaries in
 * /usr/bin, units in /usr/lib/systemd/system, read-only) and agent mode on a host's own OS
 * (binaries in /usr/local/bin, units where upstream's installer puts them). Sources:
 *  - k3s: install.sh create_systemd_service_file (k3s-io/k3s v1.30): Type=notify for a server, exec
 *    for an agent, an environment file beside the unit. Its ExecStartPre lines (nm-cloud-setup check,
 *    modprobe of br_netfilter and overlay) are left out: k3s loads the modules it needs itself
 *    (pkg/agent/syssetup), and Edgeplane OS loads them at boot (modules-load.d).
 *  - rke2: bundle/lib/systemd/system/rke2-{server,agent}.service (rancher/rke2 v1.30), which the
 *    release tarball carries under lib/systemd/system.
 *  - kubeadm: kubelet.service and its kubelet.service.d/10-kubeadm.conf drop-in from
 *    kubernetes/release (cmd/krel/templates/latest), /usr/bin replaced by the binary directory.
 */

export interface UnitFile {
  path: string;
  content: string;
  mode: number;
  /** Written only when missing (a file the operator may fill in). */
  keep?: boolean;
}

export interface UnitLayout {
  /** Where the distribution's binaries are (`/usr/bin` in an image, `/usr/local/bin` in agent mode). */
  binDir: string;
  /** Every unit into this directory (an image's own units); else where upstream's installers put them. */
  unitDir?: string;
}

function k3sUnits(name: 'k3s' | 'k3s-agent', layout: UnitLayout): UnitFile[] {
  const server = name === 'k3s';
  const dir = layout.unitDir ?? '/etc/systemd/system';
  const env = `/etc/systemd/system/${name}.service.env`;
  const content = `[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=${server ? 'notify' : 'exec'}
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-${env}
KillMode=process
Delegate=yes
User=root
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=${layout.binDir}/k3s ${server ? 'server' : 'agent'}
`;
  const unit = { path: `${dir}/${name}.service`, content, mode: 0o644 };
  // An image's /etc starts empty on the device: the optional environment file is the operator's to add.
  return layout.unitDir ? [unit] : [unit, { path: env, content: '', mode: 0o600, keep: true }];
}

function rke2Unit(role: 'server' | 'agent', layout: UnitLayout): UnitFile {
  // The tarball's units sit under its prefix (/usr/local/lib/systemd/system in agent mode).
  const dir = layout.unitDir ?? `${layout.binDir.replace(/\/bin$/, '')}/lib/systemd/system`;
  return {
    path: `${dir}/rke2-${role}.service`,
    mode: 0o644,
    content: `[Unit]
Description=Rancher Kubernetes Engine v2 (${role})
Documentation=https://github.com/rancher/rke2#readme
Wants=network-online.target
After=network-online.target
Conflicts=rke2-${role === 'server' ? 'agent' : 'server'}.service

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-${dir}/%N.env
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=${layout.binDir}/rke2 ${role}
`,
  };
}

function kubeletUnits(layout: UnitLayout): UnitFile[] {
  const dir = layout.unitDir ?? '/etc/systemd/system';
  return [
    {
      path: `${dir}/kubelet.service`,
      mode: 0o644,
      content: `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=${layout.binDir}/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`,
    },
    {
      path: `${dir}/kubelet.service.d/10-kubeadm.conf`,
      mode: 0o644,
      content: `# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# Written by "kubeadm init" and "kubeadm join" (KUBELET_KUBEADM_ARGS).
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# The user's last-resort overrides (KUBELET_EXTRA_ARGS).
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=${layout.binDir}/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`,
    },
  ];
}

/** Every unit file of a distribution (both roles: a node may change role later). */
export function distributionUnits(distribution: Distribution, layout: UnitLayout): UnitFile[] {
  if (distribution === 'k3s') return [...k3sUnits('k3s', layout), ...k3sUnits('k3s-agent', layout)];
  if (distribution === 'rke2') return [rke2Unit('server', layout), rke2Unit('agent', layout)];
  return kubeletUnits(layout);
}
