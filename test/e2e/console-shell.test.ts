import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage, screenshot } from '../support/browser.js';
import { startAgent } from '../support/remote-session.js';
import { type TestServer, testServer } from '../support/server.js';

type AgentHandle = Awaited<ReturnType<typeof startAgent>>;

// A remote shell from the console, through a real agent (simulated device, real PTY).
describe('console remote shell in Chromium', () => {
  let t: TestServer;
  let a: AgentHandle;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    t = await testServer('sqlite');
    a = await startAgent(t);
    browser = await launchChromium();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ({ page, errors } = await newPage(ctx));
  });
  afterAll(async () => {
    await browser?.close();
    await a?.cleanup();
    await t?.close();
  });

  const screen = () => page.locator('.xterm-rows').innerText();

  it('asks for a reason, opens a shell, types a command and shows its output; the session is audited', async () => {
    await login(page, t.url, t.admin);
    await page.goto(`${t.url}/hosts/${a.host}`);
    await page.getByRole('link', { name: 'Open shell' }).click();
    await page.getByRole('heading', { name: `Remote shell on ${a.host}` }).waitFor();
    expect(await page.getByRole('button', { name: 'Start shell' }).isDisabled()).toBe(true);
    await page.getByLabel('Reason').fill('check disk alarm');
    await page.getByRole('button', { name: 'Start shell' }).click();
    await expect.poll(() => page.getByTestId('shell-state').textContent()).toContain('Connected');
    await page.keyboard.type('echo hello-$((6*7))\n');
    await expect.poll(screen, { timeout: 10_000 }).toContain('hello-42');
    await screenshot(page, 'console-shell');
    await page.keyboard.type('exit 3\n');
    await expect.poll(() => page.getByTestId('shell-state').textContent(), { timeout: 10_000 }).toContain('exit code 3');
    // The recording replays in the session's page.
    await page.getByRole('link', { name: 'Session details' }).click();
    await page.getByRole('button', { name: 'Replay recording' }).click();
    await expect.poll(() => page.getByTestId('replay').locator('.xterm-rows').innerText(), { timeout: 10_000 }).toContain('hello-42');
    const audit = await t.api('GET', '/api/v1/audit?action=session.start');
    expect(audit.body.items.at(-1)).toMatchObject({ actor: 'admin', target: `edgehosts/${a.host}`, reason: 'check disk alarm' });
    expect(errors).toEqual([]);
  });

  it('offers no shell to a viewer', async () => {
    await t.api('POST', '/api/v1/users', { metadata: { name: 'vic' }, spec: { role: 'viewer' } });
    const tok = await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vic-1' }, spec: { user: 'vic' } });
    const viewer = await newPage(await browser.newContext());
    await login(viewer.page, t.url, tok.body.status.token);
    await viewer.page.goto(`${t.url}/hosts/${a.host}`);
    await viewer.page.getByRole('heading', { name: 'Inventory' }).waitFor();
    expect(await viewer.page.getByRole('link', { name: 'Open shell' }).count()).toBe(0);
    expect(viewer.errors).toEqual([]);
  });
});
