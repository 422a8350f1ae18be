import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { launchChromium, login, newPage } from '../support/browser.js';
import { insertHosts, type SeedHost } from '../support/seed-hosts.js';
import { type TestServer, testServer } from '../support/server.js';

const FREE = 1000;
const SITES = 20;
const hostName = (i: number) => `h-${String(i).padStart(4, '0')}`;
const hostname = (i: number) => `till-${String(i).padStart(4, '0')}`;
const site = (i: number) => `store-${(i % SITES) + 1}`;

/**
 * Host pickers (cluster wizard, scale dialog) with 1,000 free hosts: grouped by site, collapsed,
 * a filter over id, hostname and site; the wizard's required variables; events in time order.
 */
describe('console host pickers, required variables and event order', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  const clusterPosts: string[] = [];

  beforeAll(async () => {
    t = await testServer('sqlite');
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    const hosts: SeedHost[] = Array.from({ length: FREE }, (_, i) => ({
      name: hostName(i),
      site: site(i),
      hostname: hostname(i),
      connectivity: 'online' as const,
    }));
    hosts.push({ name: 'h-offline', site: 'store-1', hostname: 'till-away' });
    await insertHosts(t.store, hosts);
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    page.on('request', (r) => {
      if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/clusters') clusterPosts.push(r.url());
    });
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  const pickerRows = () => page.locator('.picker-row').count();

  it('groups 1,000 free hosts by site, collapsed, and finds them by hostname, id or site', async () => {
    await page.goto(`${t.url}/clusters`);
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await expect.poll(() => page.getByTestId('role-count').textContent(), { timeout: 20_000 }).toContain(`${FREE + 1} hosts in ${SITES} sites`);
    // Every site is a group; none is open, so no host row is drawn yet.
    expect(await page.locator('.host-picker details').count()).toBe(SITES);
    expect(await pickerRows()).toBe(0);
    expect(await page.locator('.host-picker summary').first().textContent()).toBe('store-1 51 hosts');

    // By the hostname the host reports: one row, with its id next to the hostname.
    await page.getByLabel('Filter hosts').fill(hostname(42));
    await expect.poll(pickerRows).toBe(1);
    expect(await page.locator('.picker-row').textContent()).toContain(`${hostName(42)} ${hostname(42)}`);
    await page.getByLabel(hostName(42)).selectOption('control-plane');

    // By site: that group opens, drawing at most a page of rows.
    await page.getByLabel('Filter hosts').fill('store-12');
    await expect.poll(pickerRows).toBe(FREE / SITES);
    await page.getByLabel(hostName(11)).selectOption('worker');
    // By id.
    await page.getByLabel('Filter hosts').fill(hostName(999));
    await expect.poll(pickerRows).toBe(1);

    // Without a filter only the groups with a chosen host are open.
    await page.getByLabel('Filter hosts').fill('');
    await expect.poll(() => page.locator('.host-picker details[open]').count()).toBe(2);
    expect(await pickerRows()).toBe(2 * (FREE / SITES));
    expect(await page.getByTestId('role-chosen').textContent()).toBe(`Chosen: ${hostName(42)} (control-plane), ${hostName(11)} (worker)`);

    // An offline host is shown but cannot be picked (the server refuses it: HostOffline).
    await page.getByLabel('Filter hosts').fill('till-away');
    await expect.poll(pickerRows).toBe(1);
    expect(await page.getByLabel('h-offline').isDisabled()).toBe(true);
    expect(await page.locator('.picker-row').textContent()).toContain('offline');
    expect(errors).toEqual([]);
  });

  it('marks the required variable and sends nothing without it', async () => {
    await page.getByLabel('Name', { exact: true }).fill('big');
    await page.getByLabel('Cluster profile').selectOption('edge');
    await page.getByLabel('site (required)').waitFor();
    expect(await page.getByLabel('domain (optional)').getAttribute('placeholder')).toBe('default: cluster.local');
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('needs a value for site (no default in revision 1)');
    expect(await page.getByLabel('site (required)').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#var-site-help').textContent()).toContain('edge revision 1 has no default for site');
    expect(clusterPosts).toEqual([]);
    expect((await t.api('GET', '/api/v1/clusters')).body.items).toEqual([]);

    await page.getByLabel('site (required)').fill('store-12');
    await page.getByRole('button', { name: 'Create cluster' }).click();
    await page.getByRole('heading', { name: /^big/ }).waitFor();
    const spec = (await t.api('GET', '/api/v1/clusters/big')).body.spec;
    expect(spec.nodes).toEqual([
      { host: hostName(42), role: 'control-plane' },
      { host: hostName(11), role: 'worker' },
    ]);
    expect(spec.variables).toEqual({ site: 'store-12' });
    expect(errors).toEqual([]);
  });

  it('picks a host to add in the scale dialog the same way', async () => {
    await page.getByRole('button', { name: 'Upgrade or scale…' }).click();
    await expect.poll(() => page.getByTestId('add-count').textContent(), { timeout: 20_000 }).toContain(`${FREE - 1} hosts in ${SITES} sites`);
    expect(await pickerRows()).toBe(0);
    await page.getByLabel('Filter hosts').fill(hostname(500));
    await expect.poll(pickerRows).toBe(1);
    await page.getByLabel(hostName(500)).selectOption('worker');
    await page.getByRole('button', { name: 'Show plan' }).click();
    await expect
      .poll(() =>
        page
          .getByTestId('plan')
          .locator(`tr[data-row="${hostName(500)}"]`)
          .textContent(),
      )
      .toContain('worker');
    expect(errors).toEqual([]);
  });

  it('filters the hosts page by site (spec.site, not a label) on the server', async () => {
    await page.goto(`${t.url}/hosts`);
    await page.getByLabel('Site').fill('store-5');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.locator('.table-foot [role=status]').textContent()).toBe(`${FREE / SITES} edgehosts loaded`);
    expect(page.url()).toContain('site=store-5');
    expect(await page.locator('tr[data-row]').first().getAttribute('data-row')).toBe(hostName(4));
    expect(errors).toEqual([]);
  });

  it('lists events newest first on a detail page and on the Events page, whatever the server order', async () => {
    const h = hostName(7);
    // Events with random names at distinct times: name order is not time order.
    for (let i = 0; i < 4; i++) {
      expect((await t.api('POST', `/api/v1/edgehosts/${h}/reject`)).status).toBeLessThan(300);
      expect((await t.api('POST', `/api/v1/edgehosts/${h}/approve`)).status).toBeLessThan(300);
    }
    const api = (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.name=${h}&limit=100`)).body.items;
    expect(api).toHaveLength(8);
    const newestFirst = (items: any[]) =>
      [...items]
        .sort(
          (a, b) =>
            Date.parse(b.status.lastTimestamp) - Date.parse(a.status.lastTimestamp) ||
            Date.parse(b.metadata.createdAt) - Date.parse(a.metadata.createdAt) ||
            b.metadata.name.localeCompare(a.metadata.name),
        )
        .map((e) => e.metadata.name);
    const rows = (testId: string) =>
      page
        .getByTestId(testId)
        .locator('tr[data-row]')
        .evaluateAll((tr) => tr.map((r) => r.getAttribute('data-row')));

    await page.goto(`${t.url}/hosts/${h}`);
    await expect.poll(() => rows('table-events')).toHaveLength(8);
    expect(await rows('table-events')).toEqual(newestFirst(api));
    expect(await page.locator('th[aria-sort=descending]').textContent()).toMatch(/last seen/i);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events' }).click();
    await page.getByRole('heading', { name: 'Events' }).waitFor();
    // The rows drawn (a window of the table) are the newest events, in order; re-read both while the
    // controller keeps adding events for the new cluster.
    await expect
      .poll(async () => {
        const shown = await rows('table-events');
        const all = (await t.api('GET', '/api/v1/events?limit=1000')).body.items;
        return shown.length >= 8 && JSON.stringify(shown) === JSON.stringify(newestFirst(all).slice(0, shown.length));
      })
      .toBe(true);
    expect(await page.title()).toBe('Events · Edgeplane');
    // Each event's object links to that object's page.
    expect(await page.getByTestId('table-events').getByRole('link', { name: h, exact: true }).first().getAttribute('href')).toBe(`/hosts/${h}`);
    expect(errors).toEqual([]);
  });

  it('leaves out the events of an earlier object of the same name on a detail page', async () => {
    const h = hostName(8);
    const events = async () => (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.name=${h}&limit=100`)).body.items;
    expect((await t.api('POST', `/api/v1/edgehosts/${h}/reject`)).status).toBeLessThan(300);
    const old = (await t.api('GET', `/api/v1/edgehosts/${h}`)).body.metadata.uid;
    expect((await t.api('DELETE', `/api/v1/edgehosts/${h}`)).status).toBeLessThan(300);
    await insertHosts(t.store, [{ name: h, site: site(8), hostname: hostname(8), connectivity: 'online' }]);
    expect((await t.api('POST', `/api/v1/edgehosts/${h}/reject`)).status).toBeLessThan(300);
    const all = await events();
    const mine = all.filter((e: any) => e.spec.involvedObject.uid !== old).map((e: any) => e.metadata.name);
    expect(all.some((e: any) => e.spec.involvedObject.uid === old)).toBe(true);
    expect(mine.length).toBeGreaterThan(0);
    await page.goto(`${t.url}/hosts/${h}`);
    const rows = () =>
      page
        .getByTestId('table-events')
        .locator('tr[data-row]')
        .evaluateAll((tr) => tr.map((r) => r.getAttribute('data-row')));
    await expect.poll(async () => (await rows()).sort()).toEqual(mine.sort());
    expect(errors).toEqual([]);
  });
});
