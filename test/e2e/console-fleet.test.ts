import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '@edgeplane/sim';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage, screenshot } from '../support/browser.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, startSimFleet } from '../support/sim-fleet.js';

/**
 * The console against a real server and a simulated fleet (real agents with simulated devices, a
 * real OCI registry): a 3-node cluster created through the wizard reaches Running without reload.
 */
describe('console wizard with a simulated fleet', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let dir: string;
  let hosts: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-console-fleet-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    await createK3sProfile(t, registry, 'shops');
    ({ fleet, hosts } = await startSimFleet(t, { sites: 3, dataDir: join(dir, 'sim'), tokenName: 'fleet' }));
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 800 } })));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    await browser?.close();
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a 3-node cluster through the wizard and shows it reach Running without reload', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Clusters' }).click();
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await page.getByLabel('Name', { exact: true }).fill('mall');
    await page.getByLabel('Cluster profile').selectOption('shops');
    await page.getByLabel(hosts[0]).selectOption('control-plane');
    await page.getByLabel(hosts[1]).selectOption('worker');
    await page.getByLabel(hosts[2]).selectOption('worker');
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await page.getByRole('heading', { name: /^mall/ }).waitFor();
    expect(page.url()).toBe(`${t.url}/clusters/mall`);
    // The simulated devices pull the image, reboot into slot B, join Kubernetes; the page follows live.
    await expect.poll(() => page.locator('h1 .badge').textContent(), { timeout: 45_000 }).toBe('Running');
    for (const h of hosts) {
      await expect.poll(() => page.getByTestId('nodes').locator(`tr[data-row="${h}"]`).textContent()).toContain('v1.30.4+k3s1');
    }
    const cluster = (await t.api('GET', '/api/v1/clusters/mall')).body;
    expect(cluster.status.nodes.every((n: any) => n.ready)).toBe(true);
    await screenshot(page, 'console-cluster-fleet');
    expect(errors).toEqual([]);
  });
});
