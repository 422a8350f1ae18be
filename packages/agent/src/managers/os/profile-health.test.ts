import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimDevice } from '../../device/sim/sim-device.js';
import { runProfileHealthChecks } from './profile-health.js';

let root: string;
let http: Server;
let base: string;
let hits = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ep-ph-'));
  http = createServer((req, res) => {
    hits++;
    if (req.url === '/slow') return; // never answers: the timeout decides
    res.writeHead(req.url === '/healthz' ? 200 : 503).end(req.url === '/healthz' ? 'ok' : 'not ready yet');
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
afterAll(async () => {
  http.closeAllConnections();
  http.close();
  await rm(root, { recursive: true, force: true });
});

describe('profile health checks', () => {
  const device = () => new SimDevice({ root, hostname: 'sim-ph' });
  const http1 = (name: string, path: string, extra: object = {}) => ({
    name,
    type: 'http' as const,
    url: `${base}${path}`,
    timeoutSeconds: 5,
    retries: 1,
    ...extra,
  });

  it('passes on 2xx, fails on other statuses with the body, retrying first', async () => {
    expect(await runProfileHealthChecks(device(), [http1('ok', '/healthz')])).toBeUndefined();
    const before = hits;
    const reason = await runProfileHealthChecks(device(), [http1('ok', '/healthz'), http1('app', '/app', { retries: 3 })], { retryDelayMs: 5 });
    expect(reason).toBe(`health check "app" failed after 3 attempt(s): GET ${base}/app: HTTP 503 not ready yet`);
    expect(hits - before).toBe(4);
  });

  it('fails an http check that does not answer in time, or cannot connect', async () => {
    expect(await runProfileHealthChecks(device(), [http1('slow', '/slow', { timeoutSeconds: 1 })])).toContain('no answer within 1s');
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    const port = (gone.address() as AddressInfo).port;
    await new Promise((r) => gone.close(r)); // nothing listens on this port any more
    const closed = await runProfileHealthChecks(device(), [
      { name: 'down', type: 'http', url: `http://127.0.0.1:${port}/healthz`, timeoutSeconds: 2, retries: 1 },
    ]);
    expect(closed).toContain('ECONNREFUSED');
  });

  it('runs command checks through the device (SIMULATION: edgeplane-sim-health on a SimDevice)', async () => {
    const cmd = (command: string[]) => [{ name: 'cmd', type: 'command' as const, command, timeoutSeconds: 5, retries: 1 }];
    expect(await runProfileHealthChecks(device(), cmd(['edgeplane-sim-health', 'ok']))).toBeUndefined();
    expect(await runProfileHealthChecks(device(), cmd(['edgeplane-sim-health', 'fail', 'disk', 'full']))).toBe(
      'health check "cmd" failed after 1 attempt(s): edgeplane-sim-health fail disk full exited 1: disk full',
    );
    // marker: fails while the file exists on the device.
    expect(await runProfileHealthChecks(device(), cmd(['edgeplane-sim-health', 'marker', '/etc/unhealthy']))).toBeUndefined();
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/unhealthy'), 'raid degraded\n');
    expect(await runProfileHealthChecks(device(), cmd(['edgeplane-sim-health', 'marker', '/etc/unhealthy']))).toContain('exited 1: raid degraded');
    // A simulated device runs no other binaries: the check fails and says so.
    expect(await runProfileHealthChecks(device(), cmd(['curl', 'x']))).toContain('exited 127');
  });
});
