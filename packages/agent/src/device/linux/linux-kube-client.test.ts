import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../atomic-file.js';
import { tokenKubeconfig } from '../kubeconfig.js';
import { LinuxDevice } from './linux-device.js';

/**
 * LinuxDevice's Kubernetes client is @kubernetes/client-node; this checks the requests it makes
 * against a small HTTP server speaking the few API paths involved (read node, discovery, apply).
 */
let server: Server;
let root: string;
const requests: { method: string; url: string; contentType?: string; auth?: string; body: string }[] = [];

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => resolve(data));
  });
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const text = await body(req);
    requests.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], auth: req.headers.authorization, body: text });
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (req.headers.authorization !== 'Bearer admin-token') return json(401, { kind: 'Status', message: 'Unauthorized', code: 401 });
    const path = (req.url ?? '').split('?')[0];
    if (path === '/api/v1/nodes/edge-a') {
      return json(200, {
        metadata: { name: 'edge-a', labels: { zone: 'a' } },
        spec: { taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] },
        status: { conditions: [{ type: 'Ready', status: 'True', message: 'kubelet is posting ready status' }], nodeInfo: { kubeletVersion: 'v1.30.4+k3s1' } },
      });
    }
    if (path === '/api/v1/nodes/missing') return json(404, { kind: 'Status', message: 'nodes "missing" not found', code: 404 });
    if (path === '/api/v1/nodes/leaving' && req.method === 'DELETE') return json(200, { kind: 'Status', status: 'Success', code: 200 });
    if (path === '/api/v1/nodes/protected' && req.method === 'DELETE')
      return json(403, { kind: 'Status', message: 'nodes "protected" is forbidden: node "edge-a" is not allowed to delete node "protected"', code: 403 });
    if (path === '/api/v1')
      return json(200, {
        kind: 'APIResourceList',
        groupVersion: 'v1',
        resources: [{ name: 'configmaps', namespaced: true, kind: 'ConfigMap', verbs: ['patch'] }],
      });
    if (path === '/api/v1/namespaces/shop/configmaps/settings' && req.method === 'PATCH')
      return json(200, { apiVersion: 'v1', kind: 'ConfigMap', ...JSON.parse(text) });
    json(404, { kind: 'Status', message: `no route ${path}`, code: 404 });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  root = await mkdtemp(join(tmpdir(), 'linux-kube-'));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Plain HTTP test server: client-node only allows it with insecure-skip-tls-verify.
  const kubeconfig = (token: string) =>
    tokenKubeconfig({ clusterName: 'default', server: url, user: 'default', token }).replace(
      `server: ${url}`,
      `server: ${url}\n      insecure-skip-tls-verify: true`,
    );
  await writeFileAtomic(join(root, 'etc/rancher/k3s/k3s.yaml'), kubeconfig('admin-token'));
  await writeFileAtomic(join(root, 'etc/bad.yaml'), kubeconfig('nope'));
});

afterAll(async () => {
  server.close();
  await rm(root, { recursive: true, force: true });
});

describe('LinuxDevice Kubernetes client', () => {
  it('deletes a Node (kubectl delete node); one already gone is fine, a refusal is an error', async () => {
    const client = new LinuxDevice({ root }).kubernetes('/etc/rancher/k3s/k3s.yaml');
    await client.deleteNode('leaving');
    expect(requests.at(-1)).toMatchObject({ method: 'DELETE', url: '/api/v1/nodes/leaving', auth: 'Bearer admin-token' });
    await client.deleteNode('missing');
    expect(requests.at(-1)).toMatchObject({ method: 'DELETE', url: '/api/v1/nodes/missing' });
    await expect(client.deleteNode('protected')).rejects.toMatchObject({ name: 'KubernetesApiError', status: 403 });
  });

  it('reads a Node with the kubeconfig under the device root', async () => {
    const client = new LinuxDevice({ root }).kubernetes('/etc/rancher/k3s/k3s.yaml');
    expect(await client.readNode('edge-a')).toEqual({
      name: 'edge-a',
      ready: true,
      message: 'kubelet is posting ready status',
      kubeletVersion: 'v1.30.4+k3s1',
      labels: { zone: 'a' },
      taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }],
    });
    expect(await client.readNode('missing')).toBeUndefined();
  });

  it('applies objects with server-side apply as field manager edgeplane, forcing conflicts', async () => {
    const client = new LinuxDevice({ root }).kubernetes('/etc/rancher/k3s/k3s.yaml');
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'shop' }, data: { mode: 'edge' } };
    const out = await client.apply(cm, 'edgeplane');
    expect(out.metadata.name).toBe('settings');
    const patch = requests.find((r) => r.method === 'PATCH');
    expect(patch?.contentType).toBe('application/apply-patch+yaml');
    expect(patch?.url).toMatch(/fieldManager=edgeplane/);
    expect(patch?.url).toMatch(/force=true/);
  });

  it('turns refusals and a missing kubeconfig into KubernetesApiError', async () => {
    await expect(new LinuxDevice({ root }).kubernetes('/etc/bad.yaml').readNode('edge-a')).rejects.toMatchObject({ name: 'KubernetesApiError', status: 401 });
    await expect(new LinuxDevice({ root }).kubernetes('/etc/kubernetes/admin.conf').readNode('edge-a')).rejects.toThrow(/does not exist yet/);
  });
});
