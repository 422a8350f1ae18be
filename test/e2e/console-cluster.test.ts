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
  let auto: string;

  beforeAll(async () => {
    // Hand-driven nodes send no heartbeats: a generous offline-after keeps them connected on a busy machine.
    t = await testServer('sqlite', { offlineAfterSeconds: 60, heartbeatIntervalSeconds: 1 });
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    // The hosts' site gets a closed maintenance window in the rollout test, so that rollout waits.
    auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true, site: 'mall' } })).body.status.token;
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
    // The profile needs a `site` variable: the wizard marks it and sends nothing without it.
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('needs a value for site');
    await page.getByLabel('site (required)').fill('shop-1');
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

  it('upgrades to another profile revision with the plan shown first, pauses, resumes and cancels; viewers see no buttons', async () => {
    const body = profileBody('edge');
    body.spec.layers.os.image = `127.0.0.1:1/edge/os@sha256:${'b'.repeat(64)}`;
    expect((await t.api('PUT', '/api/v1/clusterprofiles/edge', body)).status).toBe(200);
    await page.goto(`${t.url}/clusters/shop`);
    await page.getByRole('button', { name: 'Upgrade or scale…' }).click();
    await page.getByLabel('Profile revision (edge)').selectOption('2');
    await page.getByRole('button', { name: 'Show plan' }).click();
    const plan = page.getByTestId('plan');
    await expect.poll(() => plan.locator('tr[data-row]').count()).toBe(3);
    expect(await plan.locator('h3').textContent()).toBe('Plan: revision 1 → 2');
    for (const n of nodes) expect(await plan.locator(`tr[data-row="${n.name}"]`).textContent()).toContain('os.digest');
    await screenshot(page, 'console-upgrade-plan');
    // The plan is a dry run: nothing changed yet.
    expect((await t.api('GET', '/api/v1/clusters/shop')).body.spec.profile.revision).toBe(1);
    await plan.getByRole('button', { name: 'Apply this plan' }).click();
    const upgrade = page.getByTestId('upgrade');
    await expect.poll(() => upgrade.locator('h2').textContent(), { timeout: 20_000 }).toMatch(/^Upgrade \d+: revision 1 → 2/);
    expect(await upgrade.getByTestId('upgrade-nodes').locator('tr[data-row]').count()).toBe(3);
    expect((await t.api('GET', '/api/v1/clusters/shop')).body.spec.profile.revision).toBe(2);

    // A viewer sees the upgrade and its progress, and none of the buttons.
    await t.api('POST', '/api/v1/users', { metadata: { name: 'vic' }, spec: { role: 'viewer' } });
    const viewerToken = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vic-1' }, spec: { user: 'vic' } })).body.status.token;
    const viewerCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const viewer = await newPage(viewerCtx);
    await login(viewer.page, t.url, viewerToken);
    await viewer.page.goto(`${t.url}/clusters/shop`);
    await viewer.page.getByTestId('upgrade-nodes').waitFor();
    expect(await viewer.page.getByRole('button', { name: /^(Upgrade or scale|Pause|Resume|Retry|Cancel)/ }).count()).toBe(0);
    await viewerCtx.close();
    expect(viewer.errors).toEqual([]);

    const state = () => upgrade.locator('h2 .badge').textContent();
    // Every upgrade action without a button in the state shown is one the server refuses there.
    const LABELS: Record<string, string> = { pause: 'Pause', resume: 'Resume', retry: 'Retry', cancel: 'Cancel upgrade' };
    const hiddenAreRefused = async () => {
      for (const [verb, label] of Object.entries(LABELS)) {
        if (await upgrade.getByRole('button', { name: label, exact: true }).count()) continue;
        const res = await t.api('POST', `/api/v1/clusters/shop/${verb}`);
        expect(res.status, `${verb} in ${await state()}: ${JSON.stringify(res.body)}`).toBe(409);
      }
    };
    await upgrade.getByRole('button', { name: 'Pause' }).waitFor();
    await hiddenAreRefused();
    await upgrade.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(state).toBe('Paused');
    await hiddenAreRefused();
    expect(await state()).toBe('Paused');
    await upgrade.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(state).toMatch(/^(Staging|Rolling)$/);
    page.once('dialog', (d) => void d.accept());
    await upgrade.getByRole('button', { name: 'Cancel upgrade' }).click();
    await expect.poll(state).toBe('Cancelled');
    expect(await upgrade.getByRole('button').count()).toBe(0);
    await hiddenAreRefused();
    expect(errors).toEqual([]);
  });

  it('scales a cluster out with the plan shown first', async () => {
    const extra = await FakeNode.create(t, auto);
    nodes.push(extra);
    await page.goto(`${t.url}/clusters/shop`);
    await page.getByRole('button', { name: 'Upgrade or scale…' }).click();
    await page.getByLabel(extra.name).selectOption('worker');
    await page.getByRole('button', { name: 'Show plan' }).click();
    const row = page.getByTestId('plan').locator(`tr[data-row="${extra.name}"]`);
    await expect.poll(() => row.textContent()).toContain('joins the cluster');
    expect((await t.api('GET', '/api/v1/clusters/shop')).body.spec.nodes).toHaveLength(3);
    await page.getByRole('button', { name: 'Apply this plan' }).click();
    await page.getByRole('button', { name: 'Upgrade or scale…' }).waitFor();
    const spec = (await t.api('GET', '/api/v1/clusters/shop')).body.spec;
    expect(spec.nodes).toContainEqual({ host: extra.name, role: 'worker' });
    expect(spec.nodes).toHaveLength(4);
    expect(errors).toEqual([]);
  });

  it('shows a rollout with its plan and state, and pauses, resumes and aborts it', async () => {
    // A window that opens once a year: the rollout plans its batch and waits for it, so it stays unfinished.
    const site = { metadata: { name: 'mall' }, spec: { maintenanceWindows: [{ schedule: '0 0 1 1 *', duration: '1m' }] } };
    expect((await t.api('POST', '/api/v1/sites', site)).status).toBe(201);
    const profile = profileBody('edge');
    profile.spec.layers.os.image = `127.0.0.1:1/edge/os@sha256:${'c'.repeat(64)}`;
    expect((await t.api('PUT', '/api/v1/clusterprofiles/edge', profile)).status).toBe(200);
    const body = {
      metadata: { name: 'spring' },
      spec: { targets: { names: ['shop'] }, profile: { name: 'edge', revision: 3 }, strategy: { batches: [{ name: 'canary', limit: 1 }] } },
    };
    expect((await t.api('POST', '/api/v1/rollouts', body)).status).toBe(201);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rollouts' }).click();
    await page.getByRole('link', { name: 'spring', exact: true }).click();
    await page.getByRole('heading', { name: /^spring/ }).waitFor();
    expect(page.url()).toBe(`${t.url}/rollouts/spring`);
    const summary = page.getByTestId('rollout-summary');
    expect(await summary.textContent()).toContain('Moves clusters shop to profile edge revision 3');
    // The controller plans the batch and the cluster's turn; the page follows without reload.
    await page.getByTestId('batches').locator('tr[data-row="canary"]').waitFor({ timeout: 20_000 });
    const shop = page.getByTestId('rollout-clusters').locator('tr[data-row="shop"]');
    await expect.poll(() => shop.textContent()).toContain('waiting-for-window');
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => summary.textContent()).toContain('Paused: no new cluster starts');
    expect((await t.api('GET', '/api/v1/rollouts/spring')).body.status.paused).toBe(true);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Abort' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'Abort' }).count()).toBe(0);
    expect((await t.api('GET', '/api/v1/rollouts/spring')).body.status.abortRequested).toBe(true);
    expect(errors).toEqual([]);
  });

  it("shows a profile's layers and revisions, and a diff between two revisions", async () => {
    const body = profileBody('lab');
    expect((await t.api('POST', '/api/v1/clusterprofiles', body)).status).toBe(201);
    body.spec.layers.kubernetes.version = 'v1.31.0+k3s1';
    expect((await t.api('PUT', '/api/v1/clusterprofiles/lab', body)).status).toBe(200);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Cluster profiles' }).click();
    await page.getByRole('link', { name: 'lab', exact: true }).click();
    await page.getByRole('heading', { name: /^lab/ }).waitFor();
    expect(page.url()).toBe(`${t.url}/profiles/lab`);
    await expect.poll(() => page.getByTestId('layers').textContent()).toContain('k3s v1.31.0+k3s1');
    expect(
      await page
        .getByTestId('revisions')
        .locator('tr[data-row]')
        .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-row'))),
    ).toEqual(['2', '1']);
    // By default the latest revision is compared with the one before.
    const diff = page.getByTestId('diff');
    await expect.poll(() => diff.locator('.diff-del .diff-text').allTextContents()).toEqual([expect.stringMatching(/^- +version: v1\.30\.4\+k3s1$/)]);
    expect(await diff.locator('.diff-add .diff-text').allTextContents()).toEqual([expect.stringMatching(/^\+ +version: v1\.31\.0\+k3s1$/)]);
    await screenshot(page, 'console-profile-diff');
    // Any two revisions: reversed, and the same one twice.
    await page.getByLabel('From revision').selectOption('2');
    await page.getByLabel('To revision').selectOption('1');
    await expect.poll(() => diff.locator('.diff-add .diff-text').allTextContents()).toEqual([expect.stringMatching(/^\+ +version: v1\.30\.4\+k3s1$/)]);
    await page.getByLabel('To revision').selectOption('2');
    await page.getByText('No differences: both revisions have the same spec.').waitFor();
    expect(errors).toEqual([]);
  });
});
