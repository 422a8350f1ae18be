/**
 * SIMULATION. The Kubernetes client of a SimDevice: it reads the kubeconfig file on the device like
 * a real client, and talks to the simulated cluster registry (sim-kubernetes.ts) instead of an API
 * server over the network, authenticating with the kubeconfig's token.
 */

import { type KubeNode, type KubeObject, KubernetesApiError, type KubernetesClient } from '../kube-client.js';
import { kubeconfigCredentials } from '../kubeconfig.js';
import type { SimClusterRegistry, SimClusterSession } from './sim-kubernetes.js';
import { readDeviceFile } from './sim-units.js';

export class SimKubernetesClient implements KubernetesClient {
  constructor(
    private readonly root: string,
    private readonly kubeconfigPath: string,
    private readonly registry: SimClusterRegistry,
  ) {}

  async readNode(name: string): Promise<KubeNode | undefined> {
    return (await this.session()).readNode(name);
  }

  async apply(object: KubeObject, fieldManager: string): Promise<KubeObject> {
    return (await this.session()).apply(object, fieldManager);
  }

  async cordon(name: string, unschedulable: boolean): Promise<void> {
    await (await this.session()).cordon(name, unschedulable);
  }

  async evictPods(name: string): Promise<{ evicted: number; remaining: number }> {
    return (await this.session()).evict(name);
  }

  async deleteNode(name: string): Promise<void> {
    try {
      await (await this.session()).deleteNode(name);
    } catch (err) {
      if (err instanceof KubernetesApiError && err.status === 404) return;
      throw err;
    }
  }

  private async session(): Promise<SimClusterSession> {
    const text = await readDeviceFile(this.root, this.kubeconfigPath);
    if (text === undefined) throw new KubernetesApiError(`kubeconfig ${this.kubeconfigPath} does not exist yet`);
    let creds: ReturnType<typeof kubeconfigCredentials>;
    try {
      creds = kubeconfigCredentials(text);
    } catch (err) {
      throw new KubernetesApiError(`kubeconfig ${this.kubeconfigPath}: ${(err as Error).message}`);
    }
    return this.registry.session({ server: creds.server, token: creds.token ?? '' });
  }
}
