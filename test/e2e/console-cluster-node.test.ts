import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '@edgeplane/sim';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage } from '../support/browser.js';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, createNativeCluster, startSimFleet } from '../support/sim-fleet.js';

/** Pixels in an element's screenshot brighter than the dark terminal background. */
async function litPixels(page: Page, el: Locator): Promise<number> {
  const png = await el.screenshot();
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.width;
    canvas.height = img.height;
    const g = canvas.getContext('2d')!;
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 300) n++;
    return n;
  }, png.toString('base64'));
}

/**
 * Troubleshooting a cluster node from the console: a host in a Running native cluster on simulated
 * hosts (real agents, real OCI registry) offers a remote shell and no action the server refuses;
 * the shell runs a command, ends, and its recording replays on the session's page. At a device
 * scale factor of 1 the terminal draws underscores.
 */
describe('console remote shell on a cluster node', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let dir: string;
  let node: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-console-node-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    await createK3sProfile(t, registry, 'shops');
    const sim = await startSimFleet(t, { sites: 1, dataDir: join(dir, 'sim'), tokenName: 'fleet' });
    fleet = sim.fleet;
    node = sim.hosts[0];
    await createNativeCluster(t, 'mall', 'shops', [{ host: node, role: 'control-plane' }]);
    await waitFor(async () => {
      const c = (await t.api('GET', '/api/v1/clusters/mall')).body;
      if (c.status?.phase === 'Failed') throw new Error(`cluster failed: ${JSON.stringify(c.status)}`);
      return c.status?.phase === 'Running';
    }, 60_000);
    browser = await launchChromium();
    // deviceScaleFactor 1: where the terminal used to clip underscores.
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 })));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    await browser?.close();
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('offers a shell on the in-use node and nothing the server refuses there', async () => {
    expect((await t.api('GET', `/api/v1/edgehosts/${node}`)).body.status.state).toBe('in-use');
    await page.goto(`${t.url}/hosts/${node}`);
    await page.getByRole('heading', { name: 'Inventory' }).waitFor();
    await page.getByRole('link', { name: 'Open shell' }).waitFor();
    expect(await page.getByTestId('host-cluster').textContent()).toBe('mall');
    expect(await page.getByRole('button', { name: `Reject ${node}` }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /OS profile/ }).count()).toBe(0);
    expect(await page.getByTestId('os-why-not').textContent()).toContain('cluster mall');
    // The server agrees: both are refused for a cluster node.
    expect((await t.api('POST', `/api/v1/edgehosts/${node}/reject`)).status).toBe(409);
    expect((await t.api('PATCH', `/api/v1/edgehosts/${node}`, { spec: { osProfile: { name: 'shops' } } })).body.error.code).toBe('HostInCluster');
  });

  it('opens a shell with a reason, runs a command, draws underscores at 1x, ends, and replays the recording', async () => {
    await page.getByRole('link', { name: 'Open shell' }).click();
    await page.getByRole('heading', { name: `Remote shell on ${node}` }).waitFor();
    await page.getByLabel('Reason').fill('INC-7 kubelet on a cluster node');
    await page.getByRole('button', { name: 'Start shell' }).click();
    await expect.poll(() => page.getByTestId('shell-state').textContent(), { timeout: 15_000 }).toContain('Connected');
    // One output row of underscores only (the command line itself has other characters).
    await page.keyboard.type("echo node_check-$((6*7)); printf '%040d\\n' 0 | tr 0 _\n");
    const rows = page.getByTestId('terminal').locator('.xterm-rows > div');
    await expect.poll(() => page.getByTestId('terminal').locator('.xterm-rows').innerText(), { timeout: 15_000 }).toContain('node_check-42');
    const underscores = rows.filter({ hasText: /^_{40}\s*$/ });
    await underscores.first().waitFor();
    // Drawn, not clipped: the row has light pixels (with the old line height it was all background).
    expect(await litPixels(page, underscores.first())).toBeGreaterThan(40);
    await page.getByRole('button', { name: 'End session' }).click();
    await expect.poll(() => page.getByTestId('shell-state').textContent(), { timeout: 15_000 }).toContain('Session ended');
    const session = (await t.api('GET', '/api/v1/remotesessions')).body.items.find((s: any) => s.spec.host === node);
    expect(session.spec.reason).toBe('INC-7 kubelet on a cluster node');
    // The recording replays on the session's page, in the same terminal.
    await page.getByRole('link', { name: 'Session details' }).click();
    await page.getByRole('heading', { name: new RegExp(session.metadata.name) }).waitFor();
    await page.getByRole('button', { name: 'Replay recording' }).click();
    const replay = page.getByTestId('replay');
    await expect.poll(() => replay.locator('.xterm-rows').innerText(), { timeout: 15_000 }).toContain('node_check-42');
    const replayed = replay.locator('.xterm-rows > div').filter({ hasText: /^_{40}\s*$/ });
    await replayed.first().waitFor();
    expect(await litPixels(page, replayed.first())).toBeGreaterThan(40);
    const audit = await t.api('GET', '/api/v1/audit?action=session.start');
    expect(audit.body.items.at(-1)).toMatchObject({ actor: 'admin', target: `edgehosts/${node}`, reason: 'INC-7 kubelet on a cluster node' });
    expect(errors).toEqual([]);
  });
});
