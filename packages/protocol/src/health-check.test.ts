import { describe, expect, it } from 'vitest';
import { ClusterProfileSpec, HealthCheck, OsSpec } from './index.js';

const layers = { os: { image: 'reg.lab:5000/edge/os:1' }, kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' } };

describe('profile health checks', () => {
  it('accepts http and command checks and fills in the defaults', () => {
    const spec = ClusterProfileSpec.parse({
      layers,
      healthChecks: [
        { name: 'kubelet', type: 'http', url: 'http://127.0.0.1:10248/healthz' },
        { name: 'disk', type: 'command', command: ['test', '-d', '/var/lib/rancher'], timeoutSeconds: 300, retries: 1 },
      ],
    });
    expect(spec.healthChecks).toEqual([
      { name: 'kubelet', type: 'http', url: 'http://127.0.0.1:10248/healthz', timeoutSeconds: 10, retries: 3 },
      { name: 'disk', type: 'command', command: ['test', '-d', '/var/lib/rancher'], timeoutSeconds: 300, retries: 1 },
    ]);
    // Optional: a profile without checks stays valid and carries none.
    expect(ClusterProfileSpec.parse({ layers }).healthChecks).toBeUndefined();
  });

  it.each([
    [{ name: 'k', type: 'http' }, 'url'],
    [{ name: 'k', type: 'http', url: 'ftp://x/y' }, 'url'],
    [{ name: 'c', type: 'command' }, 'command'],
    [{ name: 'c', type: 'command', command: [] }, 'command'],
    [{ name: 'c', type: 'command', command: ['sh', '-c', '${var.check}'] }, 'command.2'],
    [{ name: 'Not_A_Label', type: 'command', command: ['true'] }, 'name'],
    [{ name: 'c', type: 'command', command: ['true'], timeoutSeconds: 301 }, 'timeoutSeconds'],
    [{ name: 'c', type: 'tcp', command: ['true'] }, 'type'],
    [{ name: 'c', type: 'command', command: ['true'], extra: 1 }, ''],
  ])('rejects %j (problem at %s)', (check, path) => {
    const r = HealthCheck.safeParse(check);
    expect(r.success).toBe(false);
    if (path) expect(r.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  it('rejects duplicate check names, in a profile and in an os spec', () => {
    const twice = [
      { name: 'a', type: 'command', command: ['true'] },
      { name: 'a', type: 'command', command: ['false'] },
    ];
    expect(ClusterProfileSpec.safeParse({ layers, healthChecks: twice }).success).toBe(false);
    expect(OsSpec.safeParse({ image: 'r:5000/os:1', digest: `sha256:${'a'.repeat(64)}`, healthChecks: twice }).success).toBe(false);
  });
});
