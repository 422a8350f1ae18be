import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../atomic-file.js';
import { tokenKubeconfig } from '../kubeconfig.js';
import { LinuxDevice } from './linux-device.js';

/** Cordon and drain through @kubernetes/client-node, against a small HTTP server speaking those API paths. */
let server: Server;
let root: string;
const requests: { method: string; path: string; query: string; contentType?: string; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const [path, query = ''] = (req.url ?? '').split('?');
      requests.push({ method: req.method ?? '', path, query: decodeURIComponent(query), contentType: req.headers['content-type'], body: text });
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (path === '/api/v1/nodes/edge-a' && req.method === 'PATCH') return json(200, { metadata: { name: 'edge-a' }, spec: JSON.parse(text).spec });
      if (path === '/api/v1/pods')
        return json(200, {
          kind: 'PodList',
          items: [
            { metadata: { name: 'web-0', namespace: 'shop' }, status: { phase: 'Running' } },
            { metadata: { name: 'db-0', namespace: 'shop' }, status: { phase: 'Running' } },
            {
              metadata: {
                name: 'flannel-x',
                namespace: 'kube-system',
                ownerReferences: [{ kind: 'DaemonSet', name: 'flannel', uid: 'u', apiVersion: 'apps/v1' }],
              },
              status: { phase: 'Running' },
            },
            { metadata: { name: 'done-1', namespace: 'shop' }, status: { phase: 'Succeeded' } },
          ],
        });
      if (path === '/api/v1/namespaces/shop/pods/web-0/eviction') return json(201, { kind: 'Eviction' });
      if (path === '/api/v1/namespaces/shop/pods/db-0/eviction')
        return json(429, { kind: 'Status', code: 429, message: "Cannot evict pod as it would violate the pod's disruption budget." });
      json(404, { kind: 'Status', message: `no route ${path}`, code: 404 });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  root = await mkdtemp(join(tmpdir(), 'linux-drain-'));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = tokenKubeconfig({ clusterName: 'default', server: url, user: 'default', token: 'admin' }).replace(
    `server: ${url}`,
    `server: ${url}\n      insecure-skip-tls-verify: true`,
  );
  await writeFileAtomic(join(root, 'etc/rancher/k3s/k3s.yaml'), kubeconfig);
});
afterAll(async () => {
  server.close();
  await rm(root, { recursive: true, force: true });
});

describe('LinuxDevice Kubernetes client: cordon and drain', () => {
  it('cordons with a merge patch of spec.unschedulable', async () => {
    const client = new LinuxDevice({ root }).kubernetes('/etc/rancher/k3s/k3s.yaml');
    await client.cordon!('edge-a', true);
    const patch = requests.find((r) => r.method === 'PATCH')!;
    expect(patch.contentType).toBe('application/merge-patch+json');
    expect(JSON.parse(patch.body)).toEqual({ spec: { unschedulable: true } });
  });

  it('evicts the pods on the node (not DaemonSet or finished ones); a budget refusal leaves the pod for the next round', async () => {
    const client = new LinuxDevice({ root }).kubernetes('/etc/rancher/k3s/k3s.yaml');
    expect(await client.evictPods!('edge-a')).toEqual({ evicted: 1, remaining: 1 });
    expect(requests.find((r) => r.path === '/api/v1/pods')?.query).toContain('fieldSelector=spec.nodeName=edge-a');
    const evictions = requests.filter((r) => r.path.endsWith('/eviction')).map((r) => r.path);
    expect(evictions).toEqual(['/api/v1/namespaces/shop/pods/web-0/eviction', '/api/v1/namespaces/shop/pods/db-0/eviction']);
  });
});
