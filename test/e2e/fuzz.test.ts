import { REGISTER_AUDIENCE } from '@edgeplane/protocol';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../support/db.js';
import { register, TestDevice } from '../support/device.js';
import { fuzzAgents } from '../support/fuzz/agent-fuzz.js';
import { RawClient, runPool } from '../support/fuzz/http-client.js';
import { HttpFuzzer, openapiOperations, type PlannedRequest, ROUTES_BEYOND_OPENAPI, touchedBy, type World } from '../support/fuzz/http-fuzz.js';
import { fuzzSeed, Prng } from '../support/fuzz/prng.js';
import type { GenContext } from '../support/fuzz/schema-gen.js';
import { dumpStore, type StoreDump, unexplainedDifferences } from '../support/fuzz/store-dump.js';
import { FuzzKey, planUpgrade, tryUpgrade } from '../support/fuzz/upgrade-fuzz.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * Schema-driven fuzzer against a real server per dialect: malformed HTTP requests generated from the
 * protocol's zod schemas and the served OpenAPI document, and malformed agent frames over real agent
 * channels. Nothing may answer 5xx, the process must stay up, and the store may change only where a
 * 2xx answer says it did. Replay a failure with EDGEPLANE_FUZZ_SEED=<seed> (printed below).
 */
const SEED = fuzzSeed();
/** Malformed requests and frames per dialect; valid ones are sent besides them. */
const HTTP_REQUESTS = Number(process.env.EDGEPLANE_FUZZ_REQUESTS ?? 5000);
const AGENT_FRAMES = Number(process.env.EDGEPLANE_FUZZ_FRAMES ?? 2000);
const AGENTS = 4;
const UPGRADES = 400;
const CONCURRENCY = 8;
/** Bounds the run even on a slow machine; the counts above are asserted, so a cut-short run fails. */
const TIME_BUDGET_MS = 150_000;

console.log(
  `fuzz seed ${SEED} (replay: EDGEPLANE_FUZZ_SEED=${SEED}); ${HTTP_REQUESTS} malformed requests and ${AGENT_FRAMES} malformed agent frames per dialect`,
);

function excerpt(s: string | Buffer | undefined, n = 300): string {
  if (s === undefined) return '';
  const t = typeof s === 'string' ? s : s.toString();
  return JSON.stringify(t.length > n ? `${t.slice(0, n)}...(${t.length} chars)` : t);
}

describe.each(DIALECTS)('fuzzing the public interface on %s', (dialect) => {
  let t: TestServer;
  const logErrors: string[] = [];
  let world: World;
  let fuzzHosts: { device: TestDevice; host: string }[] = [];
  let before: StoreDump;
  let fuzzKey: { key: FuzzKey; host: string };

  beforeAll(async () => {
    // Error-level log lines are the agent channel's 5xx: the server logs what it could not handle.
    const logger = pino({ level: 'error' }, { write: (line: string) => logErrors.push(line) });
    // OS images may only name a closed loopback port: a fuzzed profile never makes the server fetch from elsewhere.
    t = await testServer(dialect, { logger, allowedRegistries: ['127.0.0.1:9'] });
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await t.api(method, path, body);
      if (res.status >= 300) throw new Error(`setup ${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };
    // Objects the fuzzer aims at (targets), and bystanders it never names: those must come out unchanged.
    for (const prefix of ['fz', 'keep']) {
      await api('POST', '/api/v1/projects', { metadata: { name: `${prefix}-proj` }, spec: { description: 'fuzz' } });
      await api('POST', '/api/v1/sites', { metadata: { name: `${prefix}-site` }, spec: { timezone: 'UTC' } });
      await api('POST', '/api/v1/users', { metadata: { name: `${prefix}-user` }, spec: { role: 'viewer' } });
      await api('POST', '/api/v1/registrationtokens', { metadata: { name: `${prefix}-rt` }, spec: { autoApprove: true } });
      await api('POST', '/api/v1/clusterprofiles', {
        metadata: { name: `${prefix}-profile` },
        spec: { layers: { os: { image: `127.0.0.1:9/edge/os:1.0@sha256:${'ab'.repeat(32)}` }, kubernetes: { distribution: 'k3s', version: 'v1.30.2+k3s1' } } },
      });
      await api('POST', '/api/v1/edgehosts', { metadata: { name: `${prefix}-prereg` }, spec: { deviceUid: `${prefix}-device-0001` } });
    }
    // Objects DELETE requests aim at (the targets above stay for the whole run).
    const disposable: Record<string, string[]> = {};
    const add = (plural: string, name: string) => {
      disposable[plural] = [...(disposable[plural] ?? []), name];
    };
    for (let n = 0; n < 3; n++) {
      await api('POST', '/api/v1/projects', { metadata: { name: `fz-del-${n}` }, spec: {} });
      await api('POST', '/api/v1/sites', { metadata: { name: `fz-del-${n}` }, spec: {} });
      await api('POST', '/api/v1/users', { metadata: { name: `fz-del-${n}` }, spec: { role: 'viewer' } });
      await api('POST', '/api/v1/apitokens', { metadata: { name: `fz-del-${n}` }, spec: { user: 'fz-user' } });
      await api('POST', '/api/v1/registrationtokens', { metadata: { name: `fz-del-${n}` }, spec: {} });
      await api('POST', '/api/v1/edgehosts', { metadata: { name: `fz-del-${n}` }, spec: { deviceUid: `fz-del-device-${n}` } });
      await api('POST', '/api/v1/clusterprofiles', {
        metadata: { name: `fz-del-${n}` },
        spec: { layers: { os: { image: `127.0.0.1:9/edge/os:1.0@sha256:${'cd'.repeat(32)}` } } },
      });
      for (const plural of ['projects', 'sites', 'users', 'apitokens', 'registrationtokens', 'edgehosts', 'clusterprofiles']) add(plural, `fz-del-${n}`);
    }
    await api('POST', '/api/v1/users', { metadata: { name: 'fz-operator' }, spec: { role: 'operator' } });
    await api('POST', '/api/v1/users', { metadata: { name: 'fz-viewer' }, spec: { role: 'viewer' } });
    const operator = (await api('POST', '/api/v1/apitokens', { metadata: { name: 'fz-operator-token' }, spec: { user: 'fz-operator' } })).status.token;
    const viewer = (await api('POST', '/api/v1/apitokens', { metadata: { name: 'fz-viewer-token' }, spec: { user: 'fz-viewer' } })).status.token;
    const rt = (await api('POST', '/api/v1/registrationtokens', { metadata: { name: 'fz-agents' }, spec: { autoApprove: true } })).status.token;

    // The fuzzing agents: registered and approved devices whose channels carry the malformed frames.
    fuzzHosts = [];
    for (let n = 0; n < AGENTS; n++) {
      const device = await TestDevice.create(`${n}fz${SEED.toString(16)}-agent`);
      const res = await register(t.url, await device.registerBody(rt));
      if (res.status !== 200) throw new Error(`setup: register ${res.status} ${JSON.stringify(res.body)}`);
      fuzzHosts.push({ device, host: res.body.hostName });
    }
    // One more device whose key signs the crafted connect tokens of the upgrade fuzz.
    const key = await FuzzKey.create();
    const keyUid = `fzkey${SEED.toString(16)}-device`;
    const iat = Math.floor(Date.now() / 1000);
    const keyReg = await register(t.url, {
      token: rt,
      deviceUid: keyUid,
      publicKey: key.jwk,
      proof: await key.sign({ alg: 'EdDSA' }, { sub: keyUid, aud: REGISTER_AUDIENCE, iat, exp: iat + 60, jti: `fz-${SEED}` }),
      inventory: (await TestDevice.create(keyUid)).inventory(),
      agentVersion: 'fuzz',
    });
    if (keyReg.status !== 200) throw new Error(`setup: register ${keyReg.status} ${JSON.stringify(keyReg.body)}`);
    fuzzKey = { key, host: keyReg.body.hostName };
    const existing = await api('GET', '/api/v1/apitokens');
    const openapi = await (await fetch(`${t.url}/api/v1/openapi.json`)).json();
    world = {
      tokens: { admin: t.admin, operator, viewer },
      names: {
        projects: ['fz-proj', 'default'],
        sites: ['fz-site'],
        users: ['fz-user', 'fz-operator', 'admin'],
        apitokens: ['fz-operator-token'],
        registrationtokens: ['fz-rt', 'fz-agents'],
        clusterprofiles: ['fz-profile'],
        edgehosts: ['fz-prereg', ...fuzzHosts.map((h) => h.host)],
        clusters: ['fz-cluster'],
        rollouts: ['fz-rollout'],
        remotesessions: ['fz-session'],
        events: ['fz-event'],
      },
      // The fuzzer's own credentials and agents: no fuzzed write may remove or disable them.
      protectedNames: new Set([
        'users/admin',
        'users/fz-operator',
        'users/fz-viewer',
        'projects/default',
        'registrationtokens/fz-agents',
        ...existing.items.map((i: { metadata: { name: string } }) => `apitokens/${i.metadata.name}`),
        ...fuzzHosts.map((h) => `edgehosts/${h.host}`),
        `edgehosts/${fuzzKey.host}`,
      ]),
      disposable,
      registrationSecret: rt,
      proof: async (deviceUid) => {
        const d = await TestDevice.create(deviceUid);
        return { publicKey: d.jwk, proof: await d.sign({ sub: deviceUid, aud: REGISTER_AUDIENCE }) };
      },
      openapi: [...openapiOperations(openapi), ...ROUTES_BEYOND_OPENAPI],
    };
    before = await dumpStore(t.url, t.admin);
  });

  afterAll(async () => {
    await t?.close();
  });

  it(
    'answers no 5xx, stays up, and changes the store only as its 2xx answers say',
    async () => {
      const root = new Prng(SEED).fork(DIALECTS.indexOf(dialect));
      const started = Date.now();
      const deadline = started + TIME_BUDGET_MS;
      const fuzzer = new HttpFuzzer(world);
      const client = new RawClient(t.url);
      const fiveXx: string[] = [];
      const noAnswer: string[] = [];
      const statuses: Record<string, number> = {};
      /** 2xx answers per route shape: what the fuzz got through validation to, printed as coverage. */
      const accepted = new Map<string, number>();
      /** Well-formed requests the server refused, by route and code: where valid bodies miss the state they need. */
      const refusedValid = new Map<string, number>();
      const touched = new Set<string>();
      const namesIn2xx = new Set<string>();
      const agentHosts = new Set([...fuzzHosts.map((h) => `edgehosts/${h.host}`), `edgehosts/${fuzzKey.host}`]);
      const describeReq = (req: PlannedRequest) =>
        `#${req.index} seed ${SEED} ${dialect}: ${req.method} ${req.path.slice(0, 300)} [${req.role}; ${req.what}; content-type ${req.headers['content-type'] ?? 'none'}] body ${excerpt(req.body)}`;

      const ctxFor = (r: Prng, sessionIds: string[]): GenContext => ({
        rng: r,
        names: (key) => {
          const last = key.split('.').pop();
          if (last === 'host') return fuzzHosts.map((h) => h.host);
          return last === 'id' && sessionIds.length ? sessionIds : ['fz-event', 'default'];
        },
        fresh: () => `fz-${r.hex(6)}`,
      });
      // Agent frames run beside the HTTP requests: channels and API share the store, as in production.
      const agents = fuzzAgents({ url: t.url, devices: fuzzHosts, perAgent: Math.ceil(AGENT_FRAMES / AGENTS), rng: root.fork(7), deadline, ctx: ctxFor });

      // Valid requests are mixed in (they reach deeper state: clusters, sessions); the count is of malformed ones.
      let malformed = 0;
      const sent = await runPool(
        HTTP_REQUESTS * 3,
        CONCURRENCY,
        deadline,
        async (i) => {
          const req = await fuzzer.plan(i, root.fork(10_000 + i));
          if (req.malformed) malformed++;
          const res = await client.send(req);
          const key = res.error ? 'no answer' : String(res.status);
          statuses[key] = (statuses[key] ?? 0) + 1;
          if (res.status >= 500) fiveXx.push(`${describeReq(req)}\n    -> ${res.status} ${excerpt(res.text)}`);
          else if (res.error && !res.error.startsWith('client refused')) noAnswer.push(`${describeReq(req)}\n    -> ${res.error}`);
          const shape = `${req.method} ${req.path
            .split('?')[0]!
            .split('/')
            .map((seg, n) => (n === 4 ? ':name' : seg))
            .join('/')
            .slice(0, 60)}`;
          if (!req.malformed && res.status >= 400 && res.status < 500) {
            let code = String(res.status);
            try {
              code = JSON.parse(res.text).error.code;
            } catch {
              // Not our error format: the status says enough.
            }
            refusedValid.set(`${shape} ${code}`, (refusedValid.get(`${shape} ${code}`) ?? 0) + 1);
          }
          if (res.status >= 200 && res.status < 300) {
            accepted.set(shape, (accepted.get(shape) ?? 0) + 1);
            // A registration counts a use on its token: the fuzzer's valid bodies carry the fz-agents secret.
            if (req.path.startsWith('/agent/v1/register')) touched.add('registrationtokens/fz-agents');
            for (const k of touchedBy(req, res)) {
              if (req.method !== 'GET' && req.method !== 'HEAD') touched.add(k);
              namesIn2xx.add(k);
              namesIn2xx.add(k.split('/').pop()!);
            }
          }
        },
        () => malformed >= HTTP_REQUESTS,
      );
      client.close();
      // WebSocket upgrades with crafted connect tokens (signed by a registered key) and watch parameters.
      const upgrades: Record<string, number> = {};
      const upgradeSent = await runPool(UPGRADES, CONCURRENCY, deadline, async (i) => {
        const a = await planUpgrade(root.fork(50_000 + i), i, fuzzKey.key, fuzzKey.host, t.admin);
        const res = await tryUpgrade(t.url, a);
        const key = res.error ? 'no answer' : String(res.status);
        upgrades[key] = (upgrades[key] ?? 0) + 1;
        const line = `#u${i} seed ${SEED} ${dialect}: GET ${a.path.slice(0, 200)} [${a.what}] authorization ${excerpt(a.headers.authorization, 200)}`;
        if (res.status >= 500) fiveXx.push(`${line}\n    -> ${res.status} ${excerpt(res.body)}`);
        else if (res.error && !res.error.startsWith('client refused')) noAnswer.push(`${line}\n    -> ${res.error}`);
      });
      const agentResult = await agents;
      const elapsed = Date.now() - started;
      console.log(
        `${dialect}: ${sent} requests (${malformed} malformed) in ${(elapsed / 1000).toFixed(1)} s, statuses ${JSON.stringify(statuses)}; ` +
          `${agentResult.sent} agent frames (${agentResult.malformed} malformed), ${agentResult.reconnects} reconnects, closes ${JSON.stringify(agentResult.closes)}; ` +
          `${upgradeSent} upgrades ${JSON.stringify(upgrades)}`,
      );
      console.log(`${dialect}: 2xx by route: ${[...accepted].map(([k, n]) => `${k} ${n}`).join(', ')}`);
      const topRefused = [...refusedValid].sort((a, b) => b[1] - a[1]).slice(0, 20);
      console.log(`${dialect}: well-formed requests refused (top 20): ${topRefused.map(([k, n]) => `${k} ${n}`).join(', ')}`);
      for (const line of fiveXx) console.log(`5xx ${line}`);
      for (const line of noAnswer) console.log(`no answer ${line}`);

      // Still up and serving.
      const health = await fetch(`${t.url}/healthz`);
      expect(health.status).toBe(200);

      // A 2xx write on a cluster or rollout lets controllers move what it refers to: follow one level.
      const after = await dumpStore(t.url, t.admin);
      for (const k of [...touched]) {
        const o = after.objects.get(k) ?? before.objects.get(k);
        const spec = o?.spec as { nodes?: { host?: string }[]; appliance?: string } | undefined;
        for (const n of spec?.nodes ?? []) if (n.host) touched.add(`edgehosts/${n.host}`);
        if (spec?.appliance) touched.add(`edgehosts/${spec.appliance}`);
      }
      // And the other way: a user's API tokens go with the user, a host's remote sessions end with the host.
      for (const [k, o] of before.objects) {
        const spec = o.spec as { user?: string; host?: string } | undefined;
        if (k.startsWith('apitokens/') && touched.has(`users/${spec?.user}`)) touched.add(k);
        if (k.startsWith('remotesessions/') && touched.has(`edgehosts/${spec?.host}`)) touched.add(k);
      }
      const usedTokens = new Set([...before.objects.keys()].filter((k) => k.startsWith('apitokens/') && world.protectedNames.has(k)));
      console.log(
        `${dialect}: store dump ${before.objects.size} objects and ${before.audit.length} audit entries before, ` +
          `${after.objects.size} and ${after.audit.length} after; ${touched.size} objects written by 2xx answers`,
      );
      const problems = unexplainedDifferences(before, after, { touched, agentHosts, namesIn2xx, usedTokens });
      for (const p of problems) console.log(`store ${p}`);
      // Error-level lines are what the server could not handle (a 5xx, or an agent frame that threw). The one
      // expected line is ws refusing a frame over the size limit (the channel closes with 1009, as designed).
      const serverErrors = logErrors.filter((l) => !l.includes('Max payload size exceeded'));
      // Other error-level lines (an oversized frame, say) are printed once per message, for the record.
      const byMessage = new Map<string, number>();
      for (const l of logErrors) {
        const j = JSON.parse(l) as { msg?: string; err?: { message?: string } };
        const m = `${j.msg ?? ''} ${j.err?.message ?? ''}`.trim();
        byMessage.set(m, (byMessage.get(m) ?? 0) + 1);
      }
      for (const [m, n] of byMessage) console.log(`server error log (${dialect}) x${n}: ${m.slice(0, 500)}`);

      expect(malformed, 'malformed requests sent within the time budget').toBeGreaterThanOrEqual(HTTP_REQUESTS);
      expect(agentResult.malformed, 'malformed agent frames sent within the time budget').toBeGreaterThanOrEqual(AGENT_FRAMES);
      expect(upgradeSent, 'upgrades tried within the time budget').toBeGreaterThanOrEqual(UPGRADES);
      expect(fiveXx, '5xx answers (each printed above with seed and index)').toEqual([]);
      expect(noAnswer, 'requests left without an answer').toEqual([]);
      expect(agentResult.failures, 'agent channel failures').toEqual([]);
      expect(
        serverErrors.map((l) => l.slice(0, 2000)),
        'error-level server log lines (5xx, agent frames that threw)',
      ).toEqual([]);
      expect(problems, 'store changes no 2xx answer explains').toEqual([]);
    },
    TIME_BUDGET_MS + 60_000,
  );
});
