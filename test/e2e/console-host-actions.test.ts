import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeNode, profileBody } from '../../packages/server/src/cluster/cluster-test-fleet.js';
import { launchChromium, login, newPage } from '../support/browser.js';
import { insertHosts, type SeedHost } from '../support/seed-hosts.js';
import { type TestServer, testServer } from '../support/server.js';
import { createNativeCluster } from '../support/sim-fleet.js';

const OS_DIGEST = `sha256:${'a'.repeat(64)}`;
const ACTIONS = ['approve', 'approve-key', 'reject-key', 'reject', 'os-profile', 'shell'] as const;
type Action = (typeof ACTIONS)[number];

/**
 * The console offers a host action exactly when the server accepts it, for every host state: for
 * each state the buttons on a host's page are read, then each action is tried through the API on a
 * fresh host in the same state. "Accepted" means a 2xx that did what the action says (reject of an
 * already rejected host answers 200 and changes nothing: nothing to offer).
 */
describe('console host actions match what the server accepts', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let auto: string;
  let member: FakeNode;
  const fakes: FakeNode[] = [];
  let seq = 0;

  const host = async (name: string) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body;
  const seeded = (over: Omit<SeedHost, 'name'>) => async () => {
    const name = `seed-${seq++}`;
    await insertHosts(t.store, [{ name, ...over }]);
    return name;
  };
  const online = async () => {
    const n = await FakeNode.create(t, auto);
    fakes.push(n);
    return n.name;
  };

  /** Each state and how to make a fresh host in it. */
  const STATES: { state: string; make(): Promise<string> }[] = [
    { state: 'pending-approval (offline)', make: seeded({ state: 'pending-approval' }) },
    { state: 'pending-approval with a new key', make: seeded({ state: 'pending-approval', pendingKey: true }) },
    { state: 'ready (offline)', make: seeded({ state: 'ready' }) },
    { state: 'ready with a new key', make: seeded({ state: 'ready', pendingKey: true }) },
    { state: 'ready (online)', make: online },
    { state: 'in-use cluster node (online)', make: async () => member.name },
    { state: 'rejected', make: seeded({ state: 'rejected' }) },
    { state: 'rejected with a new key', make: seeded({ state: 'rejected', pendingKey: true }) },
    { state: 'pre-registered', make: seeded({ state: 'pre-registered' }) },
  ];

  /** Tries the action through the API; true when the server accepted it and it took effect. */
  async function accepted(name: string, action: Action): Promise<boolean> {
    const before = await host(name);
    const pending = before.status.pendingKeyFingerprint as string | undefined;
    const post = (verb: string, body?: unknown) => t.api('POST', `/api/v1/edgehosts/${name}/${verb}`, body);
    let res: { status: number; body: any };
    switch (action) {
      case 'approve':
        res = await post('approve');
        return res.status < 300 && (await host(name)).status.state === 'ready';
      case 'approve-key':
        res = await post('approve-key', { fingerprint: (pending ?? '0'.repeat(64)).slice(0, 16) });
        return res.status < 300 && !(await host(name)).status.pendingKeyFingerprint;
      case 'reject-key':
        res = await post('reject-key');
        return res.status < 300 && !(await host(name)).status.pendingKeyFingerprint;
      case 'reject':
        res = await post('reject');
        return res.status < 300 && before.status.state !== 'rejected' && (await host(name)).status.state === 'rejected';
      case 'os-profile':
        res = await t.api('PATCH', `/api/v1/edgehosts/${name}`, { spec: { osProfile: { name: 'gw-os', revision: 1 } } });
        return res.status < 300 && (await host(name)).spec.osProfile?.name === 'gw-os';
      case 'shell':
        res = await t.api('POST', `/api/v1/edgehosts/${name}/sessions`, { kind: 'shell', reason: 'action table', cols: 80, rows: 24 });
        if (res.status < 300) await t.api('POST', `/api/v1/remotesessions/${res.body.metadata.name}/terminate`);
        return res.status < 300;
    }
  }

  /** What the host's page offers. */
  async function offered(name: string): Promise<Set<Action>> {
    await page.goto(`${t.url}/hosts/${name}`);
    await page.getByRole('heading', { name: 'Connectivity', exact: true }).waitFor();
    await page.getByTestId('host-os').waitFor();
    const has = async (role: 'button' | 'link', label: string | RegExp) => (await page.getByRole(role, { name: label, exact: true }).count()) > 0;
    const out = new Set<Action>();
    if (await has('button', `Approve ${name}`)) out.add('approve');
    if (await has('button', `Approve new key ${name}`)) out.add('approve-key');
    if (await has('button', `Refuse new key ${name}`)) out.add('reject-key');
    if (await has('button', `Reject ${name}`)) out.add('reject');
    if ((await has('button', 'Assign OS profile…')) || (await has('button', 'Change OS profile…'))) out.add('os-profile');
    if (await has('link', 'Open shell')) out.add('shell');
    return out;
  }

  beforeAll(async () => {
    t = await testServer('sqlite', { offlineAfterSeconds: 30, heartbeatIntervalSeconds: 1 });
    const osOnly = { metadata: { name: 'gw-os' }, spec: { layers: { os: { image: `127.0.0.1:1/edge/gw@${OS_DIGEST}`, insecure: true } } } };
    expect((await t.api('POST', '/api/v1/clusterprofiles', osOnly)).status).toBe(201);
    expect((await t.api('POST', '/api/v1/clusterprofiles', profileBody('edge'))).status).toBe(201);
    auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    member = await FakeNode.create(t, auto);
    fakes.push(member);
    await createNativeCluster(t, 'shop', 'edge', [{ host: member.name, role: 'control-plane' }], { site: 's1' });
    browser = await launchChromium();
    ({ page, errors } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } })));
    await login(page, t.url, t.admin);
  });
  afterAll(async () => {
    for (const n of fakes) n.close();
    await browser?.close();
    await t?.close();
  });

  it.each(STATES)('$state: the buttons shown are the actions the server accepts', async ({ make }) => {
    const shown = await offered(await make());
    const accepts = new Set<Action>();
    for (const action of ACTIONS) if (await accepted(await make(), action)) accepts.add(action);
    expect([...shown].sort()).toEqual([...accepts].sort());
    expect(errors).toEqual([]);
  });

  it('the hosts list offers the same row actions as the host page', async () => {
    const pending = await seeded({ state: 'pending-approval' })();
    const row = (name: string) => page.locator(`tr[data-row="${name}"]`);
    await page.goto(`${t.url}/hosts?state=in-use`);
    await row(member.name).waitFor();
    expect(await row(member.name).getByRole('button').count()).toBe(0);
    await page.goto(`${t.url}/hosts?state=pending-approval`);
    await row(pending).waitFor();
    expect(await row(pending).getByRole('button').allTextContents()).toEqual(['Approve', 'Reject']);
    // The actions column is headed like the others.
    expect(await page.locator('thead th').last().textContent()).toBe('Actions');
    expect(errors).toEqual([]);
  });
});
