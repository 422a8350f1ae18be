import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, runCli } from '../support/cli-process.js';

// `edgeplane server --drain-delay` / `--replica-url` as an operator runs them: a real server process.
describe('edgeplane server replica flags', () => {
  const dirs: string[] = [];
  const dataDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'ep-drain-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('answers not-ready on /readyz for --drain-delay seconds after SIGTERM, then exits cleanly', async () => {
    const server = runCli(['server', '--port', '0', '--data-dir', dataDir(), '--drain-delay', '4', '--replica-url', 'http://10.0.0.11:8080']);
    const url = (await server.waitForOutput(/API: +(http:\/\/127\.0\.0\.1:\d+)\/api\/v1/, 60_000))[1];
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const exited = server.stop('SIGTERM');
    // Draining: the process is still up, and says it is not ready (the load balancer's cue).
    await expect
      .poll(
        async () =>
          await fetch(`${url}/readyz`).then(
            (r) => r.status,
            () => 0,
          ),
        { timeout: 3_000, interval: 100 },
      )
      .toBe(503);
    const readyz = await fetch(`${url}/readyz`);
    expect(await readyz.json()).toMatchObject({ error: { code: 'NotReady' } });
    expect(server.proc.exitCode).toBeNull();
    expect(await exited).toBe(0);
  }, 90_000);

  it('refuses a negative drain delay and a replica URL that is not http(s), before starting anything', async () => {
    const dir = dataDir();
    const bad = await cli(['server', '--port', '0', '--data-dir', dir, '--drain-delay', '-1']);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/--drain-delay must be a non-negative integer/);
    const url = await cli(['server', '--port', '0', '--data-dir', dir, '--replica-url', 'ftp://10.0.0.11']);
    expect(url.code).not.toBe(0);
    expect(url.out).toMatch(/--replica-url must be an http:\/\/ or https:\/\/ URL/);
    expect(url.out).not.toMatch(/Edgeplane server is running/);
  }, 60_000);
});
