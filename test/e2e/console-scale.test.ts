import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage } from '../support/browser.js';
import { seededName, seedHosts } from '../support/seed-hosts.js';
import { type TestServer, testServer } from '../support/server.js';

const HOSTS = 10_000;

// Speed is measured in bench/console-hosts.bench.ts; this test checks the page stays usable.
describe(`console hosts table with ${HOSTS} hosts`, () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    t = await testServer('sqlite');
    await seedHosts(t.store, HOSTS);
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 800 } })));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  const loaded = async () => Number(((await page.locator('.table-foot [role=status]').textContent()) ?? '').match(/^(\d+)/)?.[1] ?? 0);
  const domRows = () => page.locator('tr[data-row]').count();

  it('counts the fleet on the overview from one summary request', async () => {
    await expect.poll(() => page.getByTestId('stat-total').textContent()).toContain(String(HOSTS));
    expect(await page.getByTestId('stat-pending-approval').textContent()).toContain(String(HOSTS / 10));
  });

  it('renders the first page, keeps only visible rows in the DOM, and pages in as the user scrolls', async () => {
    await page.getByRole('link', { name: 'Edge hosts' }).click();
    await page.locator(`tr[data-row="${seededName(0)}"]`).waitFor();
    expect(await loaded()).toBe(200);
    expect(await domRows()).toBeLessThan(80);
    const scroller = page.getByTestId('table-edgehosts');
    for (let i = 0; i < 30 && (await loaded()) < 1000; i++) {
      const before = await loaded();
      await scroller.evaluate((el) => el.scrollTo(0, el.scrollHeight));
      await expect.poll(loaded).toBeGreaterThan(before);
    }
    expect(await loaded()).toBeGreaterThanOrEqual(1000);
    // Scrolled near the end of what is loaded, the rows there are in the DOM, and still only a window of them.
    await scroller.evaluate((el) => el.scrollTo(0, (999 * el.scrollHeight) / 1000 - el.clientHeight));
    await page.locator(`tr[data-row="${seededName(990)}"]`).waitFor();
    expect(await domRows()).toBeLessThan(80);
    // Keyboard users page with the Load more button.
    const n = await loaded();
    await page.getByRole('button', { name: 'Load more' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(loaded).toBeGreaterThan(n);
  });

  it('filters server-side by label selector', async () => {
    await page.getByLabel('Label selector').fill('rack=r7');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.locator('.table-foot [role=status]').textContent()).toBe(`${HOSTS / 100} edgehosts loaded`);
    expect(page.url()).toContain('labelSelector=rack%3Dr7');
    await page.getByLabel('State').selectOption('pending-approval');
    await expect.poll(() => page.locator('.table-foot [role=status]').textContent()).toBe(`${HOSTS / 100} edgehosts loaded`);
    await page.getByLabel('Label selector').fill('rack=nowhere');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('No hosts match these filters.').waitFor();
  });

  it('filters by state and connectivity on the server, so the filter holds across pages', async () => {
    await page.goto(`${t.url}/hosts`);
    await page.locator(`tr[data-row="${seededName(1)}"]`).waitFor();
    await page.getByLabel('State').selectOption('pending-approval');
    // Every 10th host is pending: a full first page of them, and more on the server.
    await expect.poll(() => page.locator('.table-foot [role=status]').textContent()).toBe('200 edgehosts loaded, more available');
    expect(await page.locator('tr[data-row]').nth(1).getAttribute('data-row')).toBe(seededName(10));
    expect(await page.locator('tr[data-row]').filter({ hasNotText: 'pending-approval' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Load more' }).click();
    await expect.poll(loaded).toBe(400);
    expect(page.url()).toContain('state=pending-approval');
    // Combined with connectivity: none of the seeded hosts is online.
    await page.getByLabel('Connectivity').selectOption('online');
    await page.getByText('No hosts match these filters.').waitFor();
    expect(page.url()).toContain('connectivity=online');
  });

  it('sorts by a column', async () => {
    await page.goto(`${t.url}/hosts`);
    await page.locator(`tr[data-row="${seededName(0)}"]`).waitFor();
    await page.getByRole('button', { name: /^name/i }).click(); // descending within the loaded rows
    await expect.poll(() => page.locator('tr[data-row]').first().getAttribute('data-row')).toBe(seededName(199));
    expect(await page.locator('th[aria-sort=descending]').count()).toBe(1);
    expect(errors).toEqual([]);
  });
});
