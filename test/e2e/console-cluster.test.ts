import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIGEST, FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { launchChromium, login, newPage, screenshot } from '../support/browser.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

const VERSION = 'v1.30.4+k3s1';

// The cluster wizard and a cluster reaching Running live, with hand-driven nodes reporting status.
describe('console clusters in Chromium', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  const nodes: FakeNode[] = [];

  beforeAll(async () => {
    t = await testServer('sqlite', { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1 });
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    const auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    for (let i = 0; i < 3; i++) nodes.push(await FakeNode.create(t, auto));
    nodes.sort((a, b) => a.name.localeCompare(b.name));
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 800 } })));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await browser?.close();
    await t?.close();
  });

  it('creates a 3-node cluster through the wizard, showing API validation first, and watches it reach Running', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Clusters' }).click();
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await page.getByLabel('Name', { exact: true }).fill('shop');
    await page.getByLabel('Cluster profile').selectOption('edge');
    await page.getByLabel(nodes[0].name).selectOption('control-plane');
    await page.getByLabel(nodes[1].name).selectOption('worker');
    await page.getByLabel(nodes[2].name).selectOption('worker');
    // The profile needs a `site` variable: the API says so, and nothing is created.
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('MissingVariable');
    errors.splice(0, errors.length, ...errors.filter((e) => !/status of 4\d\d/.test(e)));
    await page.getByLabel('Variables (optional, KEY=VALUE per line)').fill('site=shop-1');
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await page.getByRole('heading', { name: /^shop/ }).waitFor();
    expect(page.url()).toBe(`${t.url}/clusters/shop`);
    await expect.poll(() => page.getByTestId('nodes').locator('tr[data-row]').count()).toBe(3);
    // Nodes report Ready as their agents would; the page follows without reload.
    for (const n of nodes) {
      await waitFor(() => n.spec()?.spec?.kubernetes);
      n.reportReady(DIGEST, VERSION);
    }
    await expect.poll(() => page.locator('h1 .badge').textContent(), { timeout: 20_000 }).toBe('Running');
    await expect.poll(() => page.getByTestId('nodes').locator(`tr[data-row="${nodes[1].name}"]`).textContent()).toContain(VERSION);
    await screenshot(page, 'console-cluster');
    expect(errors).toEqual([]);
  });
});
