import { readFileSync } from 'node:fs';
import { AGENT_PAIRINGS_PATH } from '@edgeplane/protocol';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage, screenshot } from '../support/browser.js';
import { connect, register, TestDevice } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

// The console against a real server (SQLite; the API itself is tested on both dialects elsewhere).
describe('web console in Chromium', () => {
  let t: TestServer;
  let browser: Browser;
  let ctx: BrowserContext | undefined;
  let page: Page;
  let errors: string[] = [];

  beforeAll(async () => {
    t = await testServer('sqlite', { offlineAfterSeconds: 3, heartbeatIntervalSeconds: 1 });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });
  const fresh = async (viewport = { width: 1280, height: 800 }) => {
    ctx = await browser.newContext({ viewport });
    ({ page, errors } = await newPage(ctx));
  };
  afterEach(async () => {
    // Every page must run without console errors or uncaught exceptions.
    const seen = errors;
    errors = [];
    await ctx?.close();
    ctx = undefined;
    expect(seen).toEqual([]);
  });

  /** A device registered with a new registration token of that spec. */
  const registered = async (tokenName: string, spec: { autoApprove?: boolean } = {}) => {
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: tokenName }, spec });
    const dev = await TestDevice.create();
    const reg = await register(t.url, await dev.registerBody(tok.body.status.token));
    return { dev, name: reg.body.hostName as string, state: reg.body.state as string };
  };
  const pendingHost = async (tokenName: string) => {
    const { dev, name, state } = await registered(tokenName);
    expect(state).toBe('pending-approval');
    return { dev, name };
  };

  it('serves the console at / and deep links, while API paths stay JSON', async () => {
    const index = await fetch(`${t.url}/hosts/some-host`);
    expect(index.status).toBe(200);
    expect(await index.text()).toContain('<div id="root">');
    const api = await fetch(`${t.url}/api/v1/nope/a/b/c`);
    expect(api.status).toBe(404);
    expect((await api.json()).error.code).toBe('NotFound');
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });

  it('refuses a bad token with a clear message, then signs in and shows the overview', async () => {
    await fresh();
    await page.goto(t.url);
    await page.getByLabel('API token').fill('ept_not-a-real-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Unauthenticated');
    // The browser reports the refused request itself; that is the one expected error.
    errors.splice(0, errors.length, ...errors.filter((e) => !e.includes('401')));
    await page.getByLabel('API token').fill(t.admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByTestId('stat-total').waitFor();
    await page.getByText('Live', { exact: true }).waitFor();
  });

  it('creates a registration token and shows its secret exactly once', async () => {
    await fresh();
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Registration tokens' }).click();
    await page.getByRole('button', { name: 'Create registration token' }).click();
    await page.getByLabel('Name', { exact: true }).fill('berlin');
    await page.getByLabel('Site (optional)').fill('berlin');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const secret = (await page.getByTestId('secret').textContent()) ?? '';
    expect(secret).toMatch(/^eprt_/);
    await page.getByRole('button', { name: 'Copy' }).waitFor();
    await screenshot(page, 'console-token-created');
    // While the secret is known, the installer artifacts can be downloaded with it baked in.
    const [userData] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download user-data' }).click()]);
    expect(userData.suggestedFilename()).toBe('berlin-user-data.yaml');
    const yaml = readFileSync((await userData.path())!, 'utf8');
    expect(yaml).toContain(secret);
    expect(yaml).toContain(t.url);
    const [iso] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download seed ISO' }).click()]);
    expect(
      readFileSync((await iso.path())!)
        .subarray(32769, 32774)
        .toString(),
    ).toBe('CD001'); // ISO 9660 volume descriptor
    await page.getByRole('button', { name: 'Done' }).click();
    await page.locator('tr[data-row="berlin"]').waitFor();
    expect(await page.content()).not.toContain(secret);
    await page.reload();
    await page.locator('tr[data-row="berlin"]').waitFor();
    expect(await page.content()).not.toContain(secret);
    // The secret works: a device registers with it.
    const dev = await TestDevice.create();
    expect((await register(t.url, await dev.registerBody(secret))).status).toBe(200);
    // Invalid input comes back as the API's validation message.
    await page.getByRole('button', { name: 'Create registration token' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Not A Name');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('metadata.name');
    errors.splice(0, errors.length, ...errors.filter((e) => !e.includes('422') && !e.includes('400')));
  });

  it('downloads an installer for an existing token only after a warning, rotating its secret', async () => {
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'munich' }, spec: { site: 'munich' } });
    const oldSecret = tok.body.status.token as string;
    await fresh();
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Registration tokens' }).click();
    await page.getByRole('button', { name: 'Installer for munich' }).click();
    const panel = page.getByRole('region', { name: 'Installer for token munich' });
    await expect.poll(() => panel.textContent()).toContain('can no longer register');
    // Nothing happens until the person confirms the warning.
    const rotate = panel.getByRole('button', { name: 'Rotate secret and download user-data' });
    expect(await rotate.isDisabled()).toBe(true);
    await panel.getByLabel('I understand that the old secret stops working').check();
    const [userData] = await Promise.all([page.waitForEvent('download'), rotate.click()]);
    expect(userData.suggestedFilename()).toBe('munich-user-data.yaml');
    const newSecret = (await page.getByTestId('secret').textContent()) ?? '';
    expect(newSecret).toMatch(/^eprt_/);
    expect(newSecret).not.toBe(oldSecret);
    expect(readFileSync((await userData.path())!, 'utf8')).toContain(newSecret);
    // The seed ISO is offered with the new secret, without rotating again.
    const [iso] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download seed ISO' }).click()]);
    expect(iso.suggestedFilename()).toBe('munich-seed.iso');
    await page.getByRole('button', { name: 'Done' }).click();
    // The old secret no longer registers devices; the new one does.
    expect((await register(t.url, await (await TestDevice.create()).registerBody(oldSecret))).status).toBe(401);
    expect((await register(t.url, await (await TestDevice.create()).registerBody(newSecret))).status).toBe(200);
  });

  it('shows a host registering live and approves it', async () => {
    await fresh();
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Edge hosts' }).click();
    await page.getByRole('heading', { name: 'Edge hosts' }).waitFor();
    const { name } = await pendingHost('approve-me');
    // No reload: the watch brings the new host in.
    const row = page.locator(`tr[data-row="${name}"]`);
    await row.waitFor();
    await expect.poll(() => row.textContent()).toContain('pending-approval');
    await screenshot(page, 'console-hosts');
    await page.getByRole('button', { name: `Approve ${name}` }).click();
    await expect.poll(() => row.textContent()).toContain('ready');
    expect((await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status.state).toBe('ready');
  });

  it('binds a host to a pending device key only on an explicit approval of that key', async () => {
    const { dev, name } = await pendingHost('key-change');
    expect((await t.api('POST', `/api/v1/edgehosts/${name}/approve`)).status).toBe(200);
    const other = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'key-change-2' }, spec: {} })).body.status.token;
    const reinstalled = await TestDevice.create(dev.uid);
    expect((await register(t.url, await reinstalled.registerBody(other))).body.state).toBe('pending-approval');
    const pending = (await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status.pendingKeyFingerprint;
    await fresh();
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Edge hosts' }).click();
    const row = page.locator(`tr[data-row="${name}"]`);
    await row.waitFor();
    // The host is ready: no plain Approve; the key change is decided with its own buttons.
    expect(await row.getByRole('button', { name: `Approve ${name}`, exact: true }).count()).toBe(0);
    expect(await row.getByRole('button', { name: `Refuse new key ${name}` }).count()).toBe(1);
    page.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: `Approve new key ${name}` }).click();
    await expect.poll(async () => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status.keyFingerprint).toBe(pending);
    const after = (await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status;
    expect(after.state).toBe('ready');
    expect(after.pendingKeyFingerprint).toBeUndefined();
  });

  it('claims a pairing code shown by a device', async () => {
    const dev = await TestDevice.create();
    const { token: _none, ...start } = await dev.registerBody('unused');
    const res = await fetch(`${t.url}${AGENT_PAIRINGS_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(start) });
    expect(res.status).toBe(201);
    const { code } = (await res.json()) as { code: string };
    await fresh();
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Edge hosts' }).click();
    await page.getByRole('button', { name: 'Claim pairing code' }).click();
    await page.getByLabel('Pairing code', { exact: true }).fill(code);
    await page.getByLabel('Site (optional)').fill('hamburg');
    await page.getByRole('button', { name: 'Claim', exact: true }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Claimed' }).textContent()).toContain('registers as');
    // A wrong code is refused with the API's message.
    await page.getByLabel('Pairing code', { exact: true }).fill('WRONG-CODE');
    await page.getByRole('button', { name: 'Claim', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('PairingCodeInvalid');
    errors.splice(0, errors.length, ...errors.filter((e) => !/status of 4\d\d/.test(e)));
  });

  it('opens the claim URL a pairing device shows as its QR, signs in there, and claims with the code filled in', async () => {
    const dev = await TestDevice.create();
    const { token: _none, ...start } = await dev.registerBody('unused');
    const res = await fetch(`${t.url}${AGENT_PAIRINGS_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(start) });
    const { code } = (await res.json()) as { code: string };
    await fresh();
    // The agent's QR and terminal show `<server>/claim?code=CODE` (agent/src/pairing).
    await page.goto(`${t.url}/claim?code=${code}`);
    await page.getByLabel('API token').fill(t.admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    expect(await page.getByLabel('Pairing code', { exact: true }).inputValue()).toBe(code);
    await page.getByRole('button', { name: 'Claim', exact: true }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Claimed' }).textContent()).toContain('registers as');
    expect((await t.api('POST', `/api/v1/pairings/${code}/claim`, {})).body.error.code).toBe('PairingCodeUsed');
  });

  it('shows a host going online and offline on its detail page without reload', async () => {
    const { dev, name } = await registered('auto', { autoApprove: true });
    await fresh();
    await login(page, t.url, t.admin);
    await page.goto(`${t.url}/hosts/${name}`);
    const conn = page.getByTestId('connectivity');
    await expect.poll(() => conn.textContent()).toBe('offline');
    const ch = await connect(t.url, await dev.connectToken(name));
    await expect.poll(() => conn.textContent(), { timeout: 10_000 }).toBe('online');
    await page.getByRole('heading', { name: 'Inventory' }).waitFor();
    await screenshot(page, 'console-host-detail');
    ch.ws.close();
    await expect.poll(() => conn.textContent(), { timeout: 10_000 }).toBe('offline');
    // The transitions are kept as history (Online/Offline events), newest first, also without reload.
    const history = page.getByTestId('connectivity-history').locator('li');
    await expect.poll(() => history.evaluateAll((li) => li.map((e) => e.getAttribute('data-reason')))).toEqual(['Offline', 'Online']);
  });

  it('shows a change made while its live stream was still connecting: what the page read before the stream was ready is read again', async () => {
    const { dev, name } = await registered('race', { autoApprove: true });
    await fresh();
    await login(page, t.url, t.admin);
    // The page's watch stream reaches the server only once `release` is called: the host page reads
    // the host (offline), the host comes online, and only then does the stream subscribe, so no
    // change event for it will ever come.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    await page.routeWebSocket(/\/api\/v1\/watch$/, async (ws) => {
      await held;
      ws.connectToServer();
    });
    await page.goto(`${t.url}/hosts/${name}`);
    const conn = page.getByTestId('connectivity');
    await expect.poll(() => conn.textContent()).toBe('offline');
    const ch = await connect(t.url, await dev.connectToken(name));
    await expect.poll(async () => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body.status.connectivity).toBe('online');
    expect(await conn.textContent()).toBe('offline');
    release();
    await page.getByText('Live', { exact: true }).waitFor();
    await expect.poll(() => conn.textContent(), { timeout: 10_000 }).toBe('online');
    ch.ws.close();
  });

  it('shows a viewer no write actions', async () => {
    await t.api('POST', '/api/v1/users', { metadata: { name: 'vera' }, spec: { role: 'viewer' } });
    const tok = await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vera-1' }, spec: { user: 'vera' } });
    const { name } = await pendingHost('viewer-sees');
    await fresh();
    await login(page, t.url, tok.body.status.token);
    await page.getByText('viewer', { exact: true }).waitFor();
    await page.getByRole('link', { name: 'Edge hosts' }).click();
    await page.locator(`tr[data-row="${name}"]`).waitFor();
    expect(await page.getByRole('button', { name: /^(Approve|Reject|Claim)/ }).count()).toBe(0);
    await page.getByRole('link', { name: 'Registration tokens' }).click();
    await page.locator('tr[data-row="viewer-sees"]').waitFor();
    expect(await page.getByRole('button', { name: /^(Create|Revoke|Delete|Installer)/ }).count()).toBe(0);
    await page.getByRole('link', { name: 'Users' }).click();
    await page.locator('tr[data-row="vera"]').waitFor();
    expect(await page.getByRole('button', { name: /^(Create|Delete)/ }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Audit log' }).count()).toBe(0);
  });

  it('creates and shows any other kind through the generic pages', async () => {
    await fresh();
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByLabel('Name').fill('shops');
    await page.getByLabel('Spec (JSON)').fill('{"description": "Shops and restaurants"}');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('link', { name: 'shops' }).click();
    await page.getByRole('heading', { name: 'shops' }).waitFor();
    await expect.poll(() => page.locator('pre.json').first().textContent()).toContain('Shops and restaurants');
  });

  it('shows the audit log to admins, with a chain check', async () => {
    await fresh();
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page.locator('tr[data-row]').first().waitFor(); // earlier tests wrote to the API
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await expect.poll(() => page.getByText(/hash chain of all \d+ entries is intact/).count()).toBe(1);
    await screenshot(page, 'console-audit');
    // By now the fleet has hosts and events: the overview counts them.
    await page.getByRole('link', { name: 'Overview' }).click();
    await expect.poll(() => page.getByTestId('stat-total').textContent()).not.toMatch(/^0/);
    await page.locator('main tbody tr').first().waitFor();
    await screenshot(page, 'console-overview');
  });

  it('reaches the main actions with the keyboard alone', async () => {
    await fresh();
    await login(page, t.url, t.admin);
    const tabTo = async (name: string) => {
      // Once round the page at most: as many presses as it has focusable elements (each earlier test
      // adds rows, and with them buttons), plus the browser's own stops.
      const stops = await page.evaluate(() => document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]').length);
      for (let i = 0; i < stops + 5; i++) {
        await page.keyboard.press('Tab');
        const text = await page.evaluate(() => (document.activeElement as HTMLElement | null)?.textContent?.trim());
        if (text === name) return;
      }
      throw new Error(`could not reach "${name}" with Tab`);
    };
    await tabTo('Registration tokens');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Registration tokens' }).waitFor();
    await tabTo('Create registration token');
    await page.keyboard.press('Enter');
    await page.getByLabel('Name', { exact: true }).focus();
    await page.keyboard.type('kbd-token');
    await page.keyboard.press('Enter'); // submits the form
    await page.getByTestId('secret').waitFor();
    await tabTo('Edge hosts');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Edge hosts' }).waitFor();
    await tabTo('Apply');
  });

  it('lays out for a 768 px tablet without horizontal scrolling', async () => {
    await fresh({ width: 768, height: 1024 });
    await login(page, t.url, t.admin);
    await page.getByRole('link', { name: 'Edge hosts' }).click();
    await page.getByRole('heading', { name: 'Edge hosts' }).waitFor();
    const nav = await page.getByRole('navigation', { name: 'Main' }).boundingBox();
    const main = await page.locator('main').boundingBox();
    expect(nav && main && nav.y + nav.height <= main.y + 1).toBe(true);
    // The page starts right below the navigation, not a screen further down.
    const h1 = await page.getByRole('heading', { name: 'Edge hosts' }).boundingBox();
    expect(h1 && nav && h1.y - (nav.y + nav.height)).toBeLessThan(80);
    // Rows keep one height (the virtualizer relies on it), so action buttons stay on one line.
    await page.locator('tr[data-row]').first().waitFor();
    const heights = await page.locator('tr[data-row]').evaluateAll((rows) => rows.map((r) => Math.round(r.getBoundingClientRect().height)));
    expect(new Set(heights).size).toBe(1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await screenshot(page, 'console-tablet');
  });
});
