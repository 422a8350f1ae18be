import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage, screenshot } from '../support/browser.js';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, type SimFleet, startSimFleet } from '../support/sim-fleet.js';

const SITES = [
  { name: 'shop-0', latitude: 52.52, longitude: 13.4 },
  { name: 'shop-1', latitude: 48.86, longitude: 2.35 },
  { name: 'shop-2', latitude: 40.42, longitude: -3.7 },
  { name: 'shop-3', latitude: 41.9, longitude: 12.5 },
];
/** The rollout map's colours for a failed and a succeeded site (RolloutSiteMap). */
const RED = [198, 40, 40];
const GREEN = [46, 133, 64];
/** How far along a batch is: the timeline may skip a state between two renders, never go back. */
const RANK: Record<string, number> = { queued: 0, 'waiting-for-approval': 1, 'waiting-for-window': 1, running: 2, done: 3, failed: 3 };

/**
 * The rollout page's batch timeline and thresholds, live, and a cluster's upgrade timeline: a real
 * rollout controller moves 4 single-node k3s clusters on simulated hosts (real agents, simulated A/B
 * slots, a real OCI registry) through real cluster upgrades, canary first, approval before the rest;
 * the new image fails its trial boot on the last cluster's node, so the second batch ends below its
 * success threshold.
 */
describe('console rollout progress and upgrade timeline in Chromium', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let sim: SimFleet | undefined;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let dir: string;
  /** The colour of the map's canvas at its centre (where "Find site" puts a site). */
  const centrePixel = () =>
    page.getByTestId('site-map-canvas').evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(Math.floor(c.width / 2), Math.floor(c.height / 2), 1, 1).data;
      return [d[0], d[1], d[2]];
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-console-rollout-'));
    [t, registry] = await Promise.all([testServer('sqlite', { rolloutIntervalMs: 200 }), startRegistry()]);
    await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    sim = await startSimFleet(t, { sites: SITES.length, dataDir: join(dir, 'sim'), ready: true });
    await createK3sProfile(t, registry, 'shop');
    for (const [i, s] of SITES.entries()) {
      const site = { metadata: { name: s.name }, spec: { timezone: 'Europe/Berlin', coordinates: { latitude: s.latitude, longitude: s.longitude } } };
      expect((await t.api('POST', '/api/v1/sites', site)).status).toBe(201);
      const r = await t.api('POST', '/api/v1/clusters', {
        metadata: { name: s.name, labels: { fleet: 'shops' } },
        spec: { profile: { name: 'shop', revision: 1 }, site: s.name, nodes: [{ host: sim.hosts[i], role: 'control-plane' }] },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    await waitFor(async () => {
      const items = (await t.api('GET', '/api/v1/clusters')).body.items;
      return items.filter((c: any) => c.status?.phase === 'Running' && c.status.profileRevision === 1).length === SITES.length;
    }, 90_000);
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await login(page, t.url, t.admin);
  }, 150_000);
  afterAll(async () => {
    await browser?.close();
    await sim?.fleet.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('advances the batch timeline live, never back, with states, times and thresholds as the API reports them', async () => {
    // Revision 2's image fails its trial boot on shop-3's node only (the simulated device's hook).
    const bad = sim!.hosts[3];
    const hostname = (await t.api('GET', `/api/v1/edgehosts/${bad}`)).body.status.inventory.hostname;
    await pushOsImage(registry, join(dir, 'layout'), '2.0.0', {
      'usr/lib/edgeplane/image.json': JSON.stringify({ name: 'Edgeplane OS', version: '2.0.0', simulateBootFailure: [hostname] }),
    });
    const profile = {
      metadata: { name: 'shop' },
      spec: { layers: { os: { image: `${registry.host}/edge/os:2.0.0` }, kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1' } } },
    };
    expect((await t.api('PUT', '/api/v1/clusterprofiles/shop', profile)).status).toBe(200);
    const created = await t.api('POST', '/api/v1/rollouts', {
      metadata: { name: 'spring' },
      spec: {
        targets: { selector: 'fleet=shops' },
        profile: { name: 'shop', revision: 2 },
        strategy: {
          batches: [
            { name: 'canary', limit: 1 },
            { name: 'rest', limit: '100%', successThreshold: '75%' },
          ],
          requireApproval: true,
          maxFailures: 1,
          clusterTimeout: '5m',
        },
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await page.goto(`${t.url}/rollouts/spring`);
    const timeline = page.getByTestId('rollout-timeline');
    const lane = (b: string) => timeline.locator(`g[data-batch="${b}"]`);
    await lane('rest').waitFor({ timeout: 20_000 });
    // Every state each lane shows from here on, as the page renders it (no reloads).
    await page.evaluate(() => {
      const seen: Record<string, string[]> = {};
      (window as any).__batchStates = seen;
      const record = () => {
        for (const g of document.querySelectorAll('[data-testid="rollout-timeline"] g[data-batch]')) {
          const b = g.getAttribute('data-batch')!;
          const s = g.getAttribute('data-state')!;
          seen[b] = seen[b] ?? [];
          if (seen[b].at(-1) !== s) seen[b].push(s);
        }
      };
      record();
      new MutationObserver(record).observe(document.getElementById('root')!, { subtree: true, childList: true, attributes: true });
    });

    // The canary runs and finishes; the rest waits for approval, then runs once approved.
    await expect.poll(() => lane('canary').getAttribute('data-state'), { timeout: 90_000 }).toBe('done');
    await expect.poll(() => lane('rest').getAttribute('data-state'), { timeout: 20_000 }).toBe('waiting-for-approval');
    expect(await lane('rest').textContent()).toContain('for approval');
    await page.getByRole('button', { name: 'Approve batch 2' }).click();
    await expect.poll(() => lane('rest').getAttribute('data-state'), { timeout: 20_000 }).toBe('running');
    await expect.poll(() => lane('rest').getAttribute('data-state'), { timeout: 120_000 }).toBe('failed');
    await expect.poll(() => page.locator('h1 .badge').textContent(), { timeout: 20_000 }).toBe('Failed');

    const seen: Record<string, string[]> = await page.evaluate(() => (window as any).__batchStates);
    expect(seen.rest.slice(-3)).toEqual(['waiting-for-approval', 'running', 'failed']);
    for (const [b, states] of Object.entries(seen)) {
      const ranks = states.map((s) => RANK[s]);
      expect(ranks, `${b}: ${states.join(' → ')}`).toEqual([...ranks].sort((x, y) => x - y));
    }

    // What the lanes and the outcome chart show is what the API reports.
    const api = (await t.api('GET', '/api/v1/rollouts/spring')).body.status;
    expect(api).toMatchObject({ phase: 'Failed', stopReason: 'BatchFailed' });
    expect(api.batches.map((b: any) => [b.name, b.phase, b.succeeded, b.failed])).toEqual([
      ['canary', 'Succeeded', 1, 0],
      ['rest', 'Failed', 2, 1],
    ]);
    const outcomes = page.getByTestId('batch-outcomes');
    for (const [i, b] of api.batches.entries()) {
      const members = api.clusters.filter((c: any) => c.batch === i);
      const first = members.map((c: any) => c.startedAt).sort()[0];
      const last = members
        .map((c: any) => c.finishedAt)
        .sort()
        .at(-1);
      expect(await lane(b.name).getAttribute('data-state')).toBe(b.phase === 'Succeeded' ? 'done' : 'failed');
      expect(await lane(b.name).getAttribute('data-started')).toBe(first);
      expect(await lane(b.name).getAttribute('data-finished')).toBe(last);
      const col = outcomes.locator(`g[data-batch="${b.name}"][data-succeeded]`);
      expect(await col.getAttribute('data-succeeded')).toBe(String(b.succeeded));
      expect(await col.getAttribute('data-failed')).toBe(String(b.failed));
      expect(await col.getAttribute('data-threshold')).toBe(i === 0 ? '100' : '75');
    }
    // 2 of 3 is below the 75% line; the one failure is within maxFailures 1.
    const rest = outcomes.locator('g[data-batch="rest"][data-succeeded]');
    const barTop = Number(await rest.locator('rect.out-succeeded').getAttribute('y'));
    const line = Number(await rest.locator('line.threshold').getAttribute('y1'));
    expect(barTop).toBeGreaterThan(line);
    expect(await outcomes.locator('g[data-max-failures]').getAttribute('data-max-failures')).toBe('1');
    expect(await outcomes.locator('g[data-batch="rest"][data-failed-total]').getAttribute('data-failed-total')).toBe('1');
    await page.getByTestId('rollout-timeline').scrollIntoViewIfNeeded();
    await screenshot(page, 'console-rollout-progress');

    // Per-site state on the map: each site in its cluster's colour; a click opens the site.
    expect(await page.getByTestId('rollout-map-status').textContent()).toBe('4 sites: 3 succeeded, 1 failed');
    // The map opens on the rollout's sites, not the whole world: zoomed in far enough that the four
    // cities are four dots (at world scale Paris and Berlin would share one group).
    await expect.poll(() => page.getByTestId('site-map-canvas').getAttribute('data-drawn')).toBe('4');
    expect(Number(await page.getByTestId('site-map').getAttribute('data-zoom'))).toBeGreaterThan(2);
    for (const [site, colour] of [
      ['shop-3', RED],
      ['shop-1', GREEN],
    ] as const) {
      await page.getByLabel('Find site').fill(site);
      await page.getByRole('button', { name: 'Show' }).click();
      await expect.poll(() => page.getByTestId('site-map').getAttribute('data-zoom')).toBe('200.00');
      await expect.poll(centrePixel).toEqual(colour);
    }
    await page.getByTestId('site-map-canvas').scrollIntoViewIfNeeded();
    const box = (await page.getByTestId('site-map-canvas').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await expect.poll(() => page.getByRole('tooltip').textContent()).toContain('shop-1: succeeded');
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await expect.poll(() => page.url()).toBe(`${t.url}/sites/shop-1`);
    expect(errors).toEqual([]);
  }, 300_000);

  it("shows each node's upgrade steps in order with the API's times, ending in commit or fallback", async () => {
    for (const name of ['shop-1', 'shop-3']) {
      await page.goto(`${t.url}/clusters/${name}`);
      const chart = page.getByTestId('upgrade-timeline');
      await chart.waitFor();
      const u = (await t.api('GET', `/api/v1/clusters/${name}`)).body.status.upgrade;
      for (const n of u.nodes) {
        const order = ['staged', 'started', 'draining', 'rebooting', 'verifying', 'done', 'failed'].filter((s) => n.times?.[s]);
        expect(order[0]).toBe('staged');
        expect(order.at(-1)).toBe(name === 'shop-3' ? 'failed' : 'done');
        const lane = chart.locator(`g[data-host="${n.host}"]`);
        const shown = await lane
          .locator('g[data-step]')
          .evaluateAll((gs) =>
            gs.map((g) => ({ step: g.getAttribute('data-step'), at: g.getAttribute('data-at'), x: Number(g.firstElementChild?.getAttribute('x') ?? NaN) })),
          );
        // Bars for the window's steps, then the marks (written image, commit or fallback): each step once, at the API's time.
        expect(Object.fromEntries(shown.map((s) => [s.step, s.at]))).toEqual(n.times);
        const bars = shown.filter((s) => !Number.isNaN(s.x));
        expect(bars.map((s) => s.step)).toEqual(order.filter((s) => s !== 'staged' && s !== 'done' && s !== 'failed'));
        expect(bars.map((s) => s.x)).toEqual(bars.map((s) => s.x).sort((a, b) => a - b));
        const row = page.getByTestId('upgrade-nodes').locator(`tr[data-row="${n.host}"] td.steps time`);
        expect(await row.evaluateAll((ts) => ts.map((x) => x.getAttribute('datetime')))).toEqual(order.map((s) => n.times[s]));
      }
      if (name === 'shop-3') expect(await chart.locator('[data-step="failed"] title').textContent()).toContain('fallback');
      else {
        await chart.scrollIntoViewIfNeeded();
        await screenshot(page, 'console-upgrade-timeline');
      }
    }
    expect(errors).toEqual([]);
  }, 60_000);

  it('shows a batch waiting for its maintenance window with the time it opens, then paused and stopped', async () => {
    // A window that opens once a year: the rollout plans the cluster and waits for it.
    const windows = { spec: { maintenanceWindows: [{ schedule: '0 0 1 1 *', duration: '1m' }] } };
    expect((await t.api('PATCH', '/api/v1/sites/shop-3', windows, { contentType: 'application/merge-patch+json' })).status).toBe(200);
    const body = {
      metadata: { name: 'summer' },
      spec: { targets: { names: ['shop-3'] }, profile: { name: 'shop', revision: 2 }, strategy: { batches: [{ name: 'only', limit: 1 }] } },
    };
    expect((await t.api('POST', '/api/v1/rollouts', body)).status).toBe(201);
    await page.goto(`${t.url}/rollouts/summer`);
    const lane = page.getByTestId('rollout-timeline').locator('g[data-batch="only"]');
    // Reads inside a poll get a short timeout of their own: a lane redrawn between two reads makes the
    // poll read again, instead of one read waiting out Playwright's 30 s default.
    await expect.poll(() => lane.getAttribute('data-state', { timeout: 2000 }), { timeout: 20_000 }).toBe('waiting-for-window');
    const next = (await t.api('GET', '/api/v1/rollouts/summer')).body.status.clusters[0].nextWindowAt;
    expect(Date.parse(next)).toBeGreaterThan(Date.now()); // midnight of 1 January in Berlin
    expect(await lane.textContent({ timeout: 5000 })).toContain(`window opens ${await page.evaluate((iso) => new Date(iso).toLocaleString(), next)}`);
    // Its turn has come: the waiting bar is drawn, no running bar yet.
    expect(await lane.locator('rect').count()).toBe(1);
    expect(await page.getByTestId('rollout-map-status').textContent()).toBe('1 site: 1 waiting for window');
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => lane.getAttribute('data-state', { timeout: 2000 }), { timeout: 20_000 }).toBe('paused');
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Abort' }).click();
    await expect.poll(() => lane.getAttribute('data-state', { timeout: 2000 }), { timeout: 20_000 }).toBe('stopped');
    expect((await t.api('GET', '/api/v1/rollouts/summer')).body.status).toMatchObject({
      phase: 'Aborted',
      batches: [{ phase: 'Progressing', succeeded: 0, failed: 0 }],
    });
    expect(errors).toEqual([]);
  }, 60_000);
});
