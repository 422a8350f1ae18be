import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LinuxDevice } from '../linux/linux-device.js';
import { ServiceError } from '../services.js';
import { imageSimulatesKubernetes, SIMULATED_KUBERNETES_MARKER, SimKubernetesGuestDevice } from './sim-guest-device.js';

const TOKEN = 'guest-cluster-token';
const KUBELET = '/var/lib/rancher/k3s/agent/kubelet.kubeconfig';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/**
 * Two "guests" (LinuxDevices on their own file trees, sharing nothing but the network) whose
 * Kubernetes is simulated: the init node serves the cluster's registry at the cluster endpoint, the
 * other joins it there, with the strict simulator's checks.
 */
describe('SimKubernetesGuestDevice', () => {
  let dir: string;
  let port: number;
  const devices: SimKubernetesGuestDevice[] = [];

  async function guest(name: string): Promise<SimKubernetesGuestDevice> {
    const root = join(dir, name, 'root');
    await mkdir(root, { recursive: true });
    const d = new SimKubernetesGuestDevice(new LinuxDevice({ root, slots: 'unmanaged' }), { stateDir: join(dir, name, 'state'), listenHost: '127.0.0.1' });
    devices.push(d);
    // What the kubernetes manager records next to the configuration: the simulated binary's version.
    await write(d, '/etc/edgeplane/kubernetes.yaml', 'distribution: k3s\nversion: v1.30.4+k3s1\n');
    return d;
  }
  const write = async (d: SimKubernetesGuestDevice, path: string, text: string) => {
    await mkdir(dirname(join(d.root, path)), { recursive: true });
    await writeFile(join(d.root, path), text);
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sim-guest-'));
    port = await freePort();
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is opted into by a marker in the OS image only', async () => {
    expect(await imageSimulatesKubernetes(dir)).toBe(false);
    await mkdir(dirname(join(dir, SIMULATED_KUBERNETES_MARKER)), { recursive: true });
    await writeFile(join(dir, SIMULATED_KUBERNETES_MARKER), 'simulated\n');
    expect(await imageSimulatesKubernetes(dir)).toBe(true);
  });

  it('forms one cluster across machines through the init node, refusing what k3s refuses', async () => {
    const cp = await guest('cp1');
    const w = await guest('w1');
    await write(cp, '/etc/rancher/k3s/config.yaml', `token: ${TOKEN}\ncluster-init: true\ntls-san: [127.0.0.1]\nhttps-listen-port: ${port}\nnode-name: cp1\n`);
    await cp.services.enable('k3s');
    await cp.services.start('k3s');
    expect((await cp.kubernetes('/etc/rancher/k3s/k3s.yaml').readNode('cp1'))?.ready).toBe(true);

    // A wrong token is refused by the init node's registry, not retryable (what k3s says).
    await write(w, '/etc/rancher/k3s/config.yaml', `server: https://127.0.0.1:${port}\ntoken: wrong\nnode-name: w1\n`);
    const refused = await w.services.start('k3s-agent').catch((err) => err);
    expect(refused).toBeInstanceOf(ServiceError);
    expect(refused.message).toMatch(/401 Unauthorized/);
    expect(refused.retryable).toBe(false);

    await write(w, '/etc/rancher/k3s/config.yaml', `server: https://127.0.0.1:${port}\ntoken: ${TOKEN}\nnode-name: w1\n`);
    await w.services.start('k3s-agent');
    // The joiner reads its own Node through the network; the kubelet may not read another's (NodeRestriction).
    expect((await w.kubernetes(KUBELET).readNode('w1'))?.ready).toBe(true);
    await expect(w.kubernetes(KUBELET).readNode('cp1')).rejects.toThrow(/forbidden/);
    const admin = cp.kubernetes('/etc/rancher/k3s/k3s.yaml');
    expect((await admin.readNode('w1'))?.labels['kubernetes.io/hostname']).toBe('w1');

    // The joiner's kubelet stops: its node goes NotReady on the init node.
    await w.services.stop('k3s-agent');
    expect((await admin.readNode('w1'))?.ready).toBe(false);
    // Every other command runs on the machine; the inventory says Kubernetes is simulated.
    expect((await w.exec('true', [])).stdout).toBe('');
    expect((await w.inventory()).os.name).toMatch(/\(Kubernetes simulated\)$/);
  });

  it('serves the clusters it initialized again after a restart (a reboot of the init node)', async () => {
    const cp = await guest('cp1');
    await write(cp, '/etc/rancher/k3s/config.yaml', `token: ${TOKEN}\ncluster-init: true\ntls-san: [127.0.0.1]\nhttps-listen-port: ${port}\nnode-name: cp1\n`);
    await cp.services.enable('k3s');
    await cp.services.start('k3s');
    await cp.close();
    devices.splice(0);
    const again = await guest('cp1');
    const w = await guest('w1');
    await write(w, '/etc/rancher/k3s/config.yaml', `server: https://127.0.0.1:${port}\ntoken: ${TOKEN}\nnode-name: w1\n`);
    // No service of the restarted init node was touched yet: the registry is served from its state dir.
    await w.services.start('k3s-agent');
    expect((await w.kubernetes(KUBELET).readNode('w1'))?.ready).toBe(true);
    expect(await again.services.isActive('k3s')).toBe(true);
  });

  it('a joiner retries while nothing serves the cluster endpoint', async () => {
    const w = await guest('w1');
    await write(w, '/etc/rancher/k3s/config.yaml', `server: https://127.0.0.1:${port}\ntoken: ${TOKEN}\nnode-name: w1\n`);
    const err = await w.services.start('k3s-agent').catch((e) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err.retryable).toBe(true);
  });
});
