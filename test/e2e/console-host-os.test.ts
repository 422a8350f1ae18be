import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { launchChromium, login, newPage } from '../support/browser.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';
import { createNativeCluster } from '../support/sim-fleet.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const short = (d: string) => `${d.slice(0, 15)}…`;

/** A host OS profile: only an OS layer (digest-pinned, so no registry is needed). */
const osProfile = (digest: string) => ({ metadata: { name: 'gw-os' }, spec: { layers: { os: { image: `127.0.0.1:1/edge/gw@${digest}`, insecure: true } } } });

// Host OS profiles in the console: the OS section of a host, live, assigning a profile
// as an admin, the API's refusal shown, a viewer without the control; OS-only profiles in the
// profile pages and kept out of the cluster wizard.
describe('console host OS profiles in Chromium', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  const nodes: FakeNode[] = [];
  let gw: FakeNode;
  let member: FakeNode;
  const os = (field: string) => page.getByTestId(`os-${field}`).textContent();

  beforeAll(async () => {
    // Hand-driven nodes send no heartbeats: a generous offline-after keeps them connected on a busy machine.
    t = await testServer('sqlite', { offlineAfterSeconds: 60, heartbeatIntervalSeconds: 1 });
    expect((await t.api('POST', '/api/v1/clusterprofiles', osProfile(A))).status).toBe(201);
    expect((await t.api('PUT', '/api/v1/clusterprofiles/gw-os', osProfile(B))).status).toBe(200); // revision 2
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    const auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    for (let i = 0; i < 2; i++) nodes.push(await FakeNode.create(t, auto));
    [gw, member] = nodes;
    await createNativeCluster(t, 'shop', 'edge', [{ host: member.name, role: 'control-plane' }], { site: 's1' });
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await browser?.close();
    await t?.close();
  });

  it('assigns an OS profile revision on the host page and follows the OS rollout live', async () => {
    await page.goto(`${t.url}/hosts/${gw.name}`);
    await page.getByTestId('os-none').waitFor();
    await page.getByRole('button', { name: 'Assign OS profile…' }).click();
    // Only OS-only profiles are offered; the latest revision is preselected.
    expect(await page.getByLabel('OS profile', { exact: true }).locator('option').allTextContents()).toEqual(['choose…', 'gw-os']);
    await page.getByLabel('OS profile', { exact: true }).selectOption('gw-os');
    await expect.poll(() => page.getByLabel('Revision').inputValue()).toBe('2');
    await page.getByLabel('Revision').selectOption('1');
    await page.getByRole('button', { name: 'Assign', exact: true }).click();
    await expect.poll(() => os('profile')).toBe('gw-os revision 1');
    expect(await os('desired')).toBe(short(A));
    expect(await os('uptodate')).toBe('no');
    expect(await os('phase')).toBe('not reported');
    expect((await t.api('GET', `/api/v1/edgehosts/${gw.name}`)).body.spec.osProfile).toEqual({ name: 'gw-os', revision: 1 });

    // The agent's os manager reports: the section follows without a reload.
    await waitFor(() => gw.spec()?.spec?.os?.digest === A);
    gw.report({ os: { phase: 'Writing', bootedSlot: 'A', activeSlot: 'A', digest: `sha256:${'0'.repeat(64)}`, slots: {} } });
    await expect.poll(() => os('phase')).toBe('Writing');
    gw.report({ os: { phase: 'Committed', bootedSlot: 'B', activeSlot: 'B', digest: A, slots: {} } });
    await expect.poll(() => os('uptodate')).toBe('yes');
    expect([await os('running'), await os('booted'), await os('active')]).toEqual([short(A), 'B', 'B']);

    // Moving on to revision 2; its image fails its health check and the host falls back: the reason shows.
    await page.getByRole('button', { name: 'Change OS profile…' }).click();
    await expect.poll(() => page.getByLabel('Revision').inputValue()).toBe('1'); // pinned revision preselected
    await page.getByLabel('Revision').selectOption('2');
    await page.getByRole('button', { name: 'Save OS profile' }).click();
    await expect.poll(() => os('desired')).toBe(short(B));
    expect(await os('uptodate')).toBe('no');
    gw.report({ os: { phase: 'FellBack', bootedSlot: 'B', activeSlot: 'B', digest: A, message: 'health check app failed', slots: {} } });
    await expect.poll(() => os('message')).toBe('health check app failed');
    expect(await os('phase')).toBe('FellBack');

    // The profile pages say it is OS only and who uses it.
    await page.goto(`${t.url}/profiles`);
    await expect.poll(() => page.locator('tr[data-row="gw-os"]').textContent()).toContain('OS only');
    await page.goto(`${t.url}/profiles/gw-os`);
    expect(await page.getByTestId('layers').textContent()).toContain('none: a host OS profile');
    await page.locator(`tr[data-row="${gw.name}"]`).waitFor();
    expect(errors).toEqual([]);
  });

  it('offers no OS profile on a cluster node (the server refuses it) and removes an assignment', async () => {
    await page.goto(`${t.url}/hosts/${member.name}`);
    await expect.poll(() => page.getByTestId('os-why-not').textContent()).toContain('cluster shop');
    expect(await page.getByRole('button', { name: /OS profile/ }).count()).toBe(0);
    const refused = await t.api('PATCH', `/api/v1/edgehosts/${member.name}`, { spec: { osProfile: { name: 'gw-os' } } });
    expect(refused.body.error.code).toBe('HostInCluster');
    expect((await t.api('GET', `/api/v1/edgehosts/${member.name}`)).body.spec.osProfile).toBeUndefined();

    await page.goto(`${t.url}/hosts/${gw.name}`);
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Remove OS profile' }).click();
    await page.getByTestId('os-none').waitFor();
    expect((await t.api('GET', `/api/v1/edgehosts/${gw.name}`)).body.spec.osProfile).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('keeps OS-only profiles out of the cluster wizard', async () => {
    await page.goto(`${t.url}/clusters`);
    await page.getByRole('button', { name: 'Create cluster' }).click();
    const select = page.getByLabel('Cluster profile');
    await select.locator('option[value="edge"]').waitFor({ state: 'attached' });
    expect(await select.locator('option[value="gw-os"]').isDisabled()).toBe(true);
    expect(await select.locator('option[value="gw-os"]').textContent()).toContain('OS only');
    expect(await select.locator('option[value="edge"]').isDisabled()).toBe(false);
    expect(errors).toEqual([]);
  });

  it('shows a viewer the OS section without the assign control', async () => {
    expect((await t.api('PATCH', `/api/v1/edgehosts/${gw.name}`, { spec: { osProfile: { name: 'gw-os', revision: 1 } } })).status).toBe(200);
    expect((await t.api('POST', '/api/v1/users', { metadata: { name: 'vera' }, spec: { role: 'viewer' } })).status).toBe(201);
    const token = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vera-1' }, spec: { user: 'vera' } })).body.status.token;
    const viewer = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
    await login(viewer.page, t.url, token);
    await viewer.page.goto(`${t.url}/hosts/${gw.name}`);
    await expect.poll(() => viewer.page.getByTestId('os-profile').textContent()).toBe('gw-os revision 1');
    const section = viewer.page.getByTestId('host-os');
    expect(await section.getByRole('button').count()).toBe(0);
    expect(viewer.errors).toEqual([]);
    await viewer.page.context().close();
  });
});
