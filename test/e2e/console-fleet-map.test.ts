import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Fleet } from '@edgeplane/sim';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, login, newPage, screenshot } from '../support/browser.js';
import { waitFor } from '../support/device.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { insertHosts, type SeedHost } from '../support/seed-hosts.js';
import { insertSites, seededSiteName, spreadSites } from '../support/seed-sites.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile, createNativeCluster, startSimFleet } from '../support/sim-fleet.js';

const SITES = 10_000;
const DIST = join(import.meta.dirname, '../../packages/console/dist/assets');
/** The simulated sites, placed where no seeded site is, so each stands alone on the map when zoomed in. */
const SIM_SITES = [
  { name: 'site-001', latitude: 64.15, longitude: -21.94, region: 'eu' },
  { name: 'site-002', latitude: 21.31, longitude: -157.86, region: 'us' },
  { name: 'site-003', latitude: -54.8, longitude: -68.3, region: 'latam' },
];
/** Seeded hosts, one per seeded site: every 50th offline, every 200th pending approval, the rest online. */
const seededHost = (i: number): SeedHost => ({
  name: `edge-${String(i).padStart(5, '0')}`,
  site: seededSiteName(i),
  connectivity: i % 50 === 7 ? 'offline' : 'online',
  state: i % 200 === 3 ? 'pending-approval' : 'ready',
});

const rgb = (hex: string) => [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
const GREEN = rgb('#2e8540');
const RED = rgb('#c62828');

/**
 * The Overview's fleet views in Chromium against a real server: 10,000 seeded sites on the map, plus
 * three simulated sites whose agents are real (one of them goes offline during the test), two of
 * them running a real (simulated-device) k3s cluster for the version breakdown.
 */
describe('console fleet at a glance', () => {
  let t: TestServer;
  let registry: TestRegistry;
  let fleet: Fleet | undefined;
  /** The simulated hosts of site-001, site-002 and site-003 (the last in no cluster). */
  let hosts: string[] = [];
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let dir: string;
  const requests: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-console-fleet-map-'));
    [t, registry] = await Promise.all([testServer('sqlite'), startRegistry()]);
    await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
    await createK3sProfile(t, registry, 'shops');
    ({ fleet, hosts } = await startSimFleet(t, { sites: 3, dataDir: join(dir, 'sim'), ready: true }));
    // The fleet names its sites site-001..003; which host is at which is up to registration order.
    const listed = (await t.api('GET', '/api/v1/edgehosts')).body.items as { metadata: { name: string }; spec: { site?: string } }[];
    const at = (site: string) => listed.find((h) => h.spec.site === site)!.metadata.name;
    hosts = SIM_SITES.map((s) => at(s.name));
    await createNativeCluster(t, 'north', 'shops', [{ host: hosts[0], role: 'control-plane' }]);
    await createNativeCluster(t, 'pacific', 'shops', [{ host: hosts[1], role: 'control-plane' }]);
    // Their nodes pull the image and boot it (the version breakdown counts what nodes report); Kubernetes may still be starting.
    let last: unknown;
    await waitFor(async () => {
      const items = (await t.api('GET', '/api/v1/clusters')).body.items as { status: { nodes?: { osImageDigest?: string }[] } }[];
      last = items.map((c) => c.status);
      return items.length === 2 && items.every((c) => c.status.nodes?.[0]?.osImageDigest);
    }, 90_000).catch((err) => {
      throw new Error(`${err.message}; clusters: ${JSON.stringify(last)}`);
    });
    // Seeded after the simulated fleet is up: its helper looks for the simulated hosts among the first listed.
    await insertSites(t.store, [...spreadSites(SITES), ...SIM_SITES]);
    await insertHosts(
      t.store,
      Array.from({ length: SITES }, (_, i) => seededHost(i)),
    );
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    page.on('request', (r) => requests.push(r.url()));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    await browser?.close();
    await fleet?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  /** The colour of the map's canvas at its centre. */
  const centrePixel = () =>
    page.getByTestId('site-map-canvas').evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(Math.floor(c.width / 2), Math.floor(c.height / 2), 1, 1).data;
      return [d[0], d[1], d[2]];
    });
  const showSite = async (name: string) => {
    await page.getByLabel('Find site').fill(name);
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.getByTestId('site-map').getAttribute('data-zoom')).toBe('200.00');
  };

  it('ships the map outlines in the console bundle', () => {
    const js = readdirSync(DIST)
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(join(DIST, f), 'utf8'))
      .join('\n');
    // world-atlas's TopoJSON, inlined by the build: no tile server, nothing fetched at run time.
    expect(js).toMatch(/type:\s*[`"']Topology[`"']|"type":"Topology"/);
    expect(js).toMatch(/"name":\s*"Germany"/);
  });

  it(`renders ${SITES.toLocaleString()} sites on the map, with no request leaving the server`, async () => {
    await page.getByRole('heading', { name: 'Sites', level: 2 }).waitFor();
    await expect.poll(() => page.getByTestId('map-status').textContent(), { timeout: 30_000 }).toContain(`${(SITES + 3).toLocaleString()} sites`);
    const status = (await page.getByTestId('map-status').textContent()) ?? '';
    // Every 50th seeded site has its only host offline; the three simulated ones are online (two upgrade-free clusters).
    expect(status).toContain(`${(SITES / 50).toLocaleString()} offline`);
    const box = await page.getByTestId('site-map-canvas').boundingBox();
    expect(box!.width).toBeGreaterThan(600);
    await screenshot(page, 'console-overview-map');
    const foreign = requests.filter((u) => !u.startsWith(t.url) && !u.startsWith('data:'));
    expect(foreign).toEqual([]);
  });

  it('changes a site to offline on the map, live, when its only agent disconnects', async () => {
    await showSite('site-003');
    await expect.poll(centrePixel).toEqual(GREEN);
    const agent = fleet!.agents.find((a) => a.hostName === hosts[2])!;
    expect(agent).toBeDefined();
    await agent.stop();
    await expect.poll(centrePixel, { timeout: 20_000 }).toEqual(RED);
    expect(page.url()).toBe(`${t.url}/`);
  });

  it('opens a site when its dot is clicked', async () => {
    const box = (await page.getByTestId('site-map-canvas').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.getByRole('tooltip').getByText('site-003').waitFor();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.getByRole('heading', { name: /^site-003/ }).waitFor();
    expect(page.url()).toBe(`${t.url}/sites/site-003`);
    await page.locator(`tr[data-row="${hosts[2]}"]`).waitFor();
    expect(await page.locator('h1 [data-health]').getAttribute('data-health')).toBe('offline');
    await screenshot(page, 'console-site');
  });

  it('shows the versions cluster nodes run, with the counts the API reports, linked to their clusters', async () => {
    /** Nodes per OS image digest and per Kubernetes version, as GET /api/v1/clusters reports them. */
    const fromApi = async () => {
      const items = (await t.api('GET', '/api/v1/clusters')).body.items as { status: { nodes: { osImageDigest?: string; kubernetesVersion?: string }[] } }[];
      const os: Record<string, number> = {};
      const kube: Record<string, number> = {};
      for (const c of items)
        for (const n of c.status.nodes) {
          if (n.osImageDigest) os[n.osImageDigest] = (os[n.osImageDigest] ?? 0) + 1;
          if (n.kubernetesVersion) kube[n.kubernetesVersion] = (kube[n.kubernetesVersion] ?? 0) + 1;
        }
      return { os, kube };
    };
    /** The same counts as the Overview shows them (rows keyed by digest and version). */
    const fromPage = async () => {
      const rows = (testId: string) =>
        page
          .getByTestId(testId)
          .locator('tbody tr')
          .evaluateAll((trs) =>
            Object.fromEntries(trs.map((tr) => [tr.getAttribute('data-key'), Number(tr.querySelector('[data-testid=nodes]')?.textContent)])),
          );
      const has = async (testId: string) => (await page.getByTestId(testId).count()) > 0;
      return {
        os: (await has('versions-osImage')) ? await rows('versions-osImage') : {},
        kube: (await has('versions-kubernetesVersion')) ? await rows('versions-kubernetesVersion') : {},
      };
    };
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Versions', exact: true }).waitFor();
    // Both sides re-read on each try: the page follows the nodes live, the API is the reference.
    await expect.poll(async () => isDeepStrictEqual(await fromPage(), await fromApi()), { timeout: 30_000 }).toBe(true);
    const api = await fromApi();
    expect(Object.values(api.os)).toEqual([2]);
    expect(await page.getByTestId('versions-osImage').locator('tbody tr th').textContent()).toContain('/edge/os:1.0.0');
    await page.getByTestId('versions-osImage').scrollIntoViewIfNeeded();
    await screenshot(page, 'console-overview-versions');
    await page.getByTestId('versions-osImage').locator('tbody tr').getByTestId('clusters').click();
    await expect.poll(() => page.url()).toBe(`${t.url}/clusters?osImage=${encodeURIComponent(Object.keys(api.os)[0])}`);
    await page.locator('tr[data-row="north"]').waitFor();
    await page.locator('tr[data-row="pacific"]').waitFor();
  });

  it('counts hosts and clusters by region in the health grid; a count opens the list it counts', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    const grid = page.getByTestId('fleet-health');
    await grid.waitFor();
    // The whole fleet's offline hosts: every 50th seeded host and the stopped simulated one.
    await grid
      .getByRole('link', { name: `${(SITES / 50 + 1).toLocaleString()} hosts offline` })
      .first()
      .click();
    await expect.poll(() => page.url()).toBe(`${t.url}/hosts?connectivity=offline`);
    await page.locator('tr[data-row]').first().waitFor();
    expect(await page.locator('tr[data-row]').filter({ hasNotText: 'offline' }).count()).toBe(0);
    // A region's count opens the sites of that region that have such hosts.
    await page.getByRole('link', { name: 'Overview' }).click();
    const latam = grid.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'latam', exact: true }) });
    await latam.getByRole('link', { name: /hosts offline$/ }).click();
    await expect.poll(() => page.url()).toBe(`${t.url}/sites?region=latam&connectivity=offline`);
    await page.locator('tr[data-row="site-003"]').waitFor();
    const rows = await page.locator('tr[data-row]').evaluateAll((trs) => trs.map((tr) => tr.querySelector('[data-health]')?.getAttribute('data-health')));
    expect(rows.length).toBeGreaterThan(1);
    expect(new Set(rows)).toEqual(new Set(['offline']));
    await page.getByRole('link', { name: 'Overview' }).click();
    await grid.scrollIntoViewIfNeeded();
    await screenshot(page, 'console-overview-health');
    expect(errors).toEqual([]);
  });
});
