import type { Distribution } from '@edgeplane/protocol';
import type { KubernetesDriver } from './driver.js';
import { k3sDriver } from './k3s.driver.js';
import { kubeadmDriver } from './kubeadm.driver.js';
import { rke2Driver } from './rke2.driver.js';

const DRIVERS: Record<Distribution, KubernetesDriver> = { k3s: k3sDriver, rke2: rke2Driver, kubeadm: kubeadmDriver };

export function driverFor(distribution: Distribution): KubernetesDriver {
  return DRIVERS[distribution];
}
