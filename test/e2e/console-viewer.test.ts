import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { launchChromium, login, newPage } from '../support/browser.js';
import { register, TestDevice } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/** Buttons and links that change something; a viewer's console must show none of them anywhere. */
const WRITE =
  /^(Create|Approve|Reject|Refuse|Claim|Revoke|Delete|Installer|Rotate|Upgrade|Scale|Pause|Resume|Cancel|Abort|Retry|Open shell|Start shell|Terminate|End session|Edit|Save|Apply this plan|Add|Grant|Remove|Update|Assign|Change)\b/i;

// Every page a viewer can reach, with data on it, shows no write action (role-aware console).
describe('console for a viewer in Chromium', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  const nodes: FakeNode[] = [];
  let pending: string;

  beforeAll(async () => {
    t = await testServer('sqlite');
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    const auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    nodes.push(await FakeNode.create(t, auto));
    const cluster = {
      metadata: { name: 'shop' },
      spec: { type: 'native', profile: { name: 'edge', revision: 1 }, nodes: [{ host: nodes[0].name, role: 'control-plane' }], variables: { site: 's1' } },
    };
    const created = await t.api('POST', '/api/v1/clusters', cluster);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const rollout = {
      metadata: { name: 'spring' },
      spec: { targets: { names: ['shop'] }, profile: { name: 'edge', revision: 1 }, strategy: { batches: [{ name: 'canary', limit: 1 }] } },
    };
    const ro = await t.api('POST', '/api/v1/rollouts', rollout);
    expect(ro.status, JSON.stringify(ro.body)).toBe(201);
    expect((await t.api('POST', '/api/v1/projects', { metadata: { name: 'shops' }, spec: {} })).status).toBe(201);
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'manual' }, spec: {} });
    pending = (await register(t.url, await (await TestDevice.create()).registerBody(tok.body.status.token))).body.hostName;
    expect((await t.api('POST', '/api/v1/users', { metadata: { name: 'vera' }, spec: { role: 'viewer' } })).status).toBe(201);
    const viewerToken = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vera-1' }, spec: { user: 'vera' } })).body.status.token;
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 800 } })));
    await login(page, t.url, viewerToken);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await browser?.close();
    await t?.close();
  });

  /** Names of the write actions on the current page (after its main content rendered). */
  const writeActions = async () => {
    const names = await page
      .locator('main')
      .locator('button, a, [role=button]')
      .evaluateAll((els) => els.map((e) => (e.getAttribute('aria-label') ?? e.textContent ?? '').trim()));
    return names.filter((n) => WRITE.test(n));
  };

  it('visits every page in the navigation and finds no write action', async () => {
    const nav = page.getByRole('navigation', { name: 'Main' });
    const labels = (await nav.getByRole('link').allTextContents()).map((l) => l.trim());
    expect(labels).toEqual(expect.arrayContaining(['Overview', 'Edge hosts', 'Clusters', 'Cluster profiles', 'Rollouts']));
    for (const label of labels) {
      await nav.getByRole('link', { name: label, exact: true }).click();
      await page.getByRole('heading', { level: 1 }).first().waitFor();
      // Lists with data: wait for their rows, so buttons rendered per row would be seen.
      if (label === 'Edge hosts') await page.locator(`tr[data-row="${pending}"]`).waitFor();
      if (label === 'Clusters') await page.locator('tr[data-row="shop"]').waitFor();
      if (label === 'Registration tokens') await page.locator('tr[data-row="manual"]').waitFor();
      expect({ page: label, actions: await writeActions() }).toEqual({ page: label, actions: [] });
    }
    expect(errors).toEqual([]);
  });

  it('finds no write action on detail pages either', async () => {
    const details: [string, () => Promise<void>][] = [
      [`/hosts/${pending}`, () => page.getByRole('heading', { name: 'Inventory' }).waitFor()],
      [`/hosts/${nodes[0].name}`, () => page.getByRole('heading', { name: 'Inventory' }).waitFor()],
      ['/clusters/shop', () => page.getByTestId('nodes').waitFor()],
      ['/profiles/edge', () => page.getByTestId('revisions').waitFor()],
      ['/rollouts/spring', () => page.getByTestId('rollout-summary').waitFor()],
      ['/r/projects/shops', () => page.getByRole('heading', { name: 'shops' }).waitFor()],
    ];
    for (const [path, ready] of details) {
      await page.goto(`${t.url}${path}`);
      await ready();
      expect({ path, actions: await writeActions() }).toEqual({ path, actions: [] });
    }
    expect(errors).toEqual([]);
  });
});
