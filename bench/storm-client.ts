/**
 * Storm client for the registration-storm benchmark, run as its own process so its CPU does not
 * compete with the server's event loop: prepares STORM_DEVICES device keys and signed registration
 * requests, then sends them all at once to STORM_SERVER, retrying each 429 after its Retry-After
 * (as the agent does). Prints one JSON line: elapsed ms, 429 count, other failures (by reason),
 * registered and lost devices.
 */
import { TestDevice } from '../test/support/device.js';

const server = process.env.STORM_SERVER!;
const token = process.env.STORM_TOKEN!;
const n = Number(process.env.STORM_DEVICES ?? 2000);
const devices = await Promise.all(Array.from({ length: n }, () => TestDevice.create()));
let refused = 0;
let failed = 0;
/** Failed attempts other than 429 by reason: HTTP status and error code, or the socket error. */
const failures: Record<string, number> = {};

async function registerOne(d: TestDevice): Promise<boolean> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const res = await fetch(`${server}/agent/v1/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(await d.registerBody(token)),
      });
      await res.arrayBuffer();
      if (res.ok) return true;
      if (res.status === 429) {
        refused++;
        await new Promise((r) => setTimeout(r, Number(res.headers.get('retry-after') ?? 1) * 1000));
        continue;
      }
      const reason = `HTTP ${res.status}`;
      failures[reason] = (failures[reason] ?? 0) + 1;
    } catch (err) {
      // connection refused or reset under load: back off and retry like the agent
      const reason = ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message).slice(0, 40);
      failures[reason] = (failures[reason] ?? 0) + 1;
    }
    failed++;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

const t0 = performance.now();
const results = await Promise.all(devices.map(registerOne));
const elapsedMs = performance.now() - t0;
const registered = results.filter(Boolean).length;
process.stdout.write(`${JSON.stringify({ elapsedMs, refused, failed, registered, lost: n - registered, failures })}\n`);
