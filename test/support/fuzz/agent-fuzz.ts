import { AgentMessage, PROTOCOL_VERSION } from '@edgeplane/protocol';
import type WebSocket from 'ws';
import type { z } from 'zod';
import { connect, type TestDevice } from '../device.js';
import { mutate } from './mutate.js';
import type { Prng } from './prng.js';
import { type GenContext, generateValid } from './schema-gen.js';

/** Message schemas an agent may send, straight from the protocol's discriminated union. */
const AGENT_MESSAGES = (AgentMessage as unknown as { _zod: { def: { options: z.ZodType[] } } })._zod.def.options;

export interface AgentFuzzResult {
  sent: number;
  /** Frames that were not a valid message (the rest are valid ones mixed in). */
  malformed: number;
  reconnects: number;
  /** Close codes the server used, with counts. */
  closes: Record<string, number>;
  /** Things that must not happen: an internal-error close, a hello never answered, a channel that cannot reopen. */
  failures: string[];
}

interface Channel {
  ws: WebSocket;
  messages: { type?: string }[];
  closed?: { code: number; reason: string };
}

const MAX_FRAME = 1024 * 1024;

/** One frame: a valid agent message, a mutation of one, or something that is not a message at all. */
function frame(r: Prng, ctx: GenContext): { data: string | Buffer; what: string; big: boolean; malformed: boolean } {
  const kind = r.weighted<string>([
    [160, 'message'],
    [4, 'not-json'],
    [3, 'binary'],
    [2, 'empty'],
    [3, 'not-object'],
    [1, 'too-big'],
  ]);
  switch (kind) {
    case 'not-json':
      return { data: r.pick(['hello', '{', '{"type":', '\u0000', 'null,', '{"type":"hello"'.repeat(3)]), what: 'not JSON', big: false, malformed: true };
    case 'binary':
      return { data: Buffer.from(Array.from({ length: r.int(1, 64) }, () => r.int(0, 255))), what: 'binary', big: false, malformed: true };
    case 'empty':
      return { data: '', what: 'empty', big: false, malformed: true };
    case 'not-object':
      return { data: r.pick(['[]', '1', '"hello"', 'true', 'null', '[{"type":"hello"}]']), what: 'not an object', big: false, malformed: true };
    case 'too-big':
      return {
        data: JSON.stringify({ type: 'status', status: { conditions: [{ type: 'x'.repeat(MAX_FRAME) }] } }),
        what: 'over the frame limit',
        big: true,
        malformed: true,
      };
    default: {
      const schema = r.pick(AGENT_MESSAGES);
      const { value } = generateValid(schema, ctx);
      const v = value as Record<string, unknown>;
      if (v?.type === 'hello') v.protocolVersion = PROTOCOL_VERSION;
      if (r.chance(0.2)) return { data: JSON.stringify(v), what: `valid ${v?.type}`, big: false, malformed: false };
      const m = mutate(r, v);
      const data = m.raw ?? JSON.stringify(m.value) ?? '';
      return { data, what: `${v?.type}: ${m.what}`, big: Buffer.byteLength(data) > MAX_FRAME, malformed: true };
    }
  }
}

/**
 * Drives fuzzing agents over real channels: each device sends `perAgent` malformed frames (and the
 * valid ones mixed in), waits for the
 * server to catch up every few frames (a hello must be answered with welcome), and reconnects with a
 * fresh connect token whenever the server closes its channel.
 */
export async function fuzzAgents(opts: {
  url: string;
  devices: { device: TestDevice; host: string }[];
  perAgent: number;
  rng: Prng;
  deadline: number;
  /** Generation context; `sessionIds` are ids of sessions the server opened on this channel (session.* frames aim at them). */
  ctx: (r: Prng, sessionIds: string[]) => GenContext;
}): Promise<AgentFuzzResult> {
  const result: AgentFuzzResult = { sent: 0, malformed: 0, reconnects: 0, closes: {}, failures: [] };

  async function open(device: TestDevice, host: string): Promise<Channel | undefined> {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const c = await connect(opts.url, await device.connectToken(host));
        const ch: Channel = { ...c };
        c.ws.on('close', (code, reason) => {
          ch.closed = { code, reason: reason.toString() };
          result.closes[code] = (result.closes[code] ?? 0) + 1;
        });
        c.ws.on('error', () => {});
        return ch;
      } catch (err) {
        const e = err as { status?: number; body?: unknown };
        if (attempt === 19) result.failures.push(`${host}: channel does not reopen: ${e.status ?? ''} ${JSON.stringify(e.body ?? String(err)).slice(0, 200)}`);
        await new Promise((res) => setTimeout(res, 250));
      }
    }
    return undefined;
  }

  /** A hello the server answers with welcome: everything sent before it was handled. */
  async function barrier(ch: Channel, host: string): Promise<boolean> {
    if (ch.closed) return false;
    const seen = ch.messages.length;
    ch.ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: 'fuzz' }));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (ch.messages.slice(seen).some((m) => m?.type === 'welcome')) return true;
      if (ch.closed) return false;
      await new Promise((res) => setTimeout(res, 10));
    }
    result.failures.push(`${host}: hello not answered within 15 s (the channel stopped handling messages)`);
    return false;
  }

  await Promise.all(
    opts.devices.map(async ({ device, host }, n) => {
      const r = opts.rng.fork(1000 + n);
      let ch = await open(device, host);
      if (ch) await barrier(ch, host);
      let own = 0;
      let mine = 0;
      while (own < opts.perAgent && ch && Date.now() < opts.deadline) {
        if (ch.closed) {
          if (ch.closed.code === 1011) result.failures.push(`${host}: server closed the channel with 1011 (internal error): ${ch.closed.reason}`);
          result.reconnects++;
          ch = await open(device, host);
          if (!ch) break;
          await barrier(ch, host);
          continue;
        }
        const ids = ch.messages.filter((m) => m?.type === 'session.open').map((m) => String((m as { id?: unknown }).id));
        const f = frame(r, opts.ctx(r, ids));
        await new Promise<void>((res) => ch!.ws.send(f.data, () => res()));
        result.sent++;
        mine++;
        if (f.malformed) {
          result.malformed++;
          own++;
        }
        if (mine % 25 === 0) await barrier(ch, host);
      }
      if (ch && !ch.closed) {
        await barrier(ch, host);
        ch.ws.close();
      }
    }),
  );
  return result;
}
