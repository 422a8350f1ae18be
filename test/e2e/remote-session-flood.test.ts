import { tmpdir, userInfo } from 'node:os';
import { SimDevice } from '@edgeplane/agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/device.js';
import { type Op, operator, startAgentProcess } from '../support/remote-session.js';
import { type TestServer, testServer } from '../support/server.js';

const FLOOD_BYTES = 100_000_000;
const WINDOW = 256 * 1024;
const SLACK = 128 * 1024;

async function gauge(ts: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`${ts.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Round trip through one echo session: how long until the agent's answer arrives. */
async function ping(op: Op, n: number): Promise<number> {
  const t = Date.now();
  op.session.input(`ping-${n}\n`);
  await op.see(new RegExp(`pong ping-${n}\\n`), 10_000);
  return Date.now() - t;
}

describe('flow control: 20 concurrent sessions plus a 100 MB flood on one agent process', () => {
  let ts: TestServer;
  let agent: Awaited<ReturnType<typeof startAgentProcess>>;

  beforeAll(async () => {
    ts = await testServer('sqlite');
    agent = await startAgentProcess(ts, 'logLevel: warn\n');
  }, 60_000);
  afterAll(async () => {
    await agent?.cleanup();
    await ts?.close();
  });

  it('keeps server-held bytes within the windows, other sessions responsive, and a slow operator back-pressures the agent', async () => {
    const echo = ['sh', '-c', 'while read l; do echo "pong $l"; done'];
    const ops = await Promise.all(Array.from({ length: 20 }, () => operator(ts, agent.host, { kind: 'exec', reason: 'concurrency test', command: echo })));
    await Promise.all(ops.map((o) => o.session.ready()));
    await Promise.all(ops.map((o, i) => ping(o, i)));

    const rssBefore = process.memoryUsage().rss;
    const flood = await operator(
      ts,
      agent.host,
      { kind: 'exec', reason: 'flood test', command: ['sh', '-c', `yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c ${FLOOD_BYTES}`] },
      ts.admin,
      false,
    );
    let maxBuffered = 0;
    let maxRss = rssBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxBuffered = Math.max(maxBuffered, await gauge(ts, 'edgeplane_remote_session_buffered_bytes'));
        maxRss = Math.max(maxRss, process.memoryUsage().rss);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    // While the flood runs, every other session still answers promptly.
    await waitFor(() => flood.bytes() > 5_000_000, 20_000, 10);
    const latencies: number[] = [];
    for (let round = 0; round < 3; round++) latencies.push(...(await Promise.all(ops.map((o, i) => ping(o, 100 * round + i)))));
    expect(Math.max(...latencies)).toBeLessThan(3000);

    // A slow operator: stop reading the flood. The server stops acking, the agent stops reading the
    // command's pipe, and nothing piles up in the server.
    flood.session.pause();
    await new Promise((r) => setTimeout(r, 300));
    const stalledAt = flood.bytes();
    const bufferedWhilePaused = await gauge(ts, 'edgeplane_remote_session_buffered_bytes');
    await new Promise((r) => setTimeout(r, 700));
    expect(bufferedWhilePaused).toBeLessThanOrEqual(WINDOW + SLACK);
    expect((await Promise.all(ops.slice(0, 5).map((o, i) => ping(o, 900 + i)))).every((ms) => ms < 3000)).toBe(true);
    flood.session.resume();

    const end = await flood.end;
    sampling = false;
    await sampler;
    expect(end).toMatchObject({ code: 0, reason: 'exit' });
    expect(flood.bytes()).toBe(FLOOD_BYTES);
    expect(stalledAt).toBeLessThan(FLOOD_BYTES);
    // Only the flood's window (plus the echo sessions' few bytes) is ever held by the server ...
    expect(maxBuffered).toBeLessThanOrEqual(WINDOW + SLACK + 20 * 1024);
    // ... and this process (server and operators) did not grow by anything like the 100 MB that passed through
    // (measured: ~25 MB of allocator/GC churn; holding the flood would take well over 100 MB).
    expect(maxRss - rssBefore).toBeLessThan(64 * 1024 * 1024);

    for (const o of ops) o.session.eof();
    const ends = await Promise.all(ops.map((o) => o.end));
    expect(ends.every((e) => e.code === 0)).toBe(true);
    const s = await ts.api('GET', `/api/v1/remotesessions/${flood.id}`);
    // The agent's process runs as this user: a simulated host's notice line (stderr) comes first.
    const notice = `${new SimDevice({ root: tmpdir() }).sessionNotice(userInfo().username)}\n`;
    expect(s.body.status).toMatchObject({ phase: 'ended', bytesOut: FLOOD_BYTES + Buffer.byteLength(notice) });
  });
});
