import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, startFleet } from '@edgeplane/sim';
import { pino } from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage } from '../support/browser.js';
import { waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

// The host page says which OS mode a host is in: a simulated host on Edgeplane's A/B OS and one
// that keeps its own OS (agent mode), as their agents report it.
describe('console host page: OS mode in Chromium', () => {
  let t: TestServer;
  let fleet: Fleet | undefined;
  let dir: string;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  const byMode: Record<string, string> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-console-mode-'));
    t = await testServer('sqlite');
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    fleet = await startFleet({
      server: t.url,
      token,
      sites: 1,
      nodesPerSite: 2,
      unmanagedPerSite: 1,
      dataDir: join(dir, 'sim'),
      logger: pino({ level: 'silent' }),
    });
    await fleet.waitUntilConnected(20_000);
    const hosts = await waitFor(async () => {
      const items = (await t.api('GET', '/api/v1/edgehosts')).body.items.filter((h: { status: { inventory?: unknown } }) => h.status.inventory);
      return items.length === 2 && items;
    }, 20_000);
    for (const h of hosts) byMode[h.status.inventory.osMode] = h.metadata.name;
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    await browser?.close();
    await fleet?.stop();
    await t?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['unmanaged', 'Unmanaged OS (keeps its own)'],
    ['managed', 'Managed OS (Edgeplane A/B slots)'],
  ])('a %s host', async (mode, text) => {
    expect(byMode[mode]).toBeDefined();
    await page.goto(`${t.url}/hosts/${byMode[mode]}`);
    await expect.poll(() => page.getByTestId('os-mode').textContent()).toBe(text);
    expect(errors).toEqual([]);
  });
});
