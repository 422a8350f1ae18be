/**
 * Lean bench agents: holds many agent channels with little CPU, so the load generator is not what
 * limits a "how many agents does the server hold" benchmark. Each agent speaks the real agent
 * protocol (packages/agent/src/agent.ts and channel.ts): a device-signed connect token made the way
 * the agent's identity makes it (jose, EdDSA, fresh jti, 60 s lifetime), `hello` first, then at the
 * welcome's `heartbeatIntervalSeconds` a `heartbeat` frame with a WebSocket ping beside it; the
 * pong's round trip is the heartbeat round trip measured. It does not run the agent's managers
 * (no spec is applied, no status reported): the simulator (`edgeplane sim`) does that, at ~14 ms
 * of CPU per agent. Identities (Ed25519 keys) are made once and cached (leanIdentities); the hosts
 * are written to the store in bulk with the tests' row builder (test/support/seed-hosts.ts hostRow,
 * imported by the parent only: the workers stay free of the server package), so a run pays no
 * registration: the registration storm measures that.
 *
 * Run as a child process (fork, IPC): the parent sends `start`, then `rtt` to collect round trips
 * measured since the last `rtt`, then `stop`; the worker reports `progress` every second.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONNECT_AUDIENCE, PROTOCOL_VERSION } from '@edgeplane/protocol';
import { importJWK, SignJWT } from 'jose';
import WebSocket from 'ws';

/** One cached device identity: its UID and Ed25519 key (private JWK parts). */
export interface LeanIdentity {
  uid: string;
  x: string;
  d: string;
}

/** Where the bench keeps what runs reuse (BENCH_WORK_DIR, default under the temp dir). */
export function benchWorkDir(): string {
  const dir = process.env.BENCH_WORK_DIR ?? join(tmpdir(), 'edgeplane-bench-work');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The first `n` cached identities, making (and caching) more when the cache holds fewer. */
export function leanIdentities(n: number): LeanIdentity[] {
  const file = join(benchWorkDir(), 'lean-identities.json');
  const have: LeanIdentity[] = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : [];
  if (have.length >= n) return have.slice(0, n);
  while (have.length < n) {
    const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as { x: string; d: string };
    have.push({ uid: randomUUID(), x: jwk.x, d: jwk.d });
  }
  writeFileSync(`${file}.tmp`, JSON.stringify(have));
  renameSync(`${file}.tmp`, file);
  return have;
}

export interface StartCommand {
  cmd: 'start';
  /** Fronts (load balancers, or one server) to spread the agents over, in turn. */
  servers: string[];
  agents: { hostName: string; uid: string; x: string; d: string }[];
  /** Connects in flight at once (a wave); the next starts when one is welcomed or fails. */
  wave: number;
  /** Loopback source addresses to spread connections over (ephemeral ports are per source address). */
  localAddresses: string[];
}

export type WorkerMessage =
  | { type: 'progress'; welcomed: number; open: number; failedAttempts: number; reconnects: number; failures: Record<string, number> }
  | { type: 'rtt'; samples: number[]; missed: number };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function worker(): Promise<void> {
  const start = await new Promise<StartCommand>((resolve) => process.once('message', (m) => resolve(m as StartCommand)));
  const urls = start.servers.map((s) => `${s.replace(/^http/, 'ws')}/agent/v1/connect`);
  let welcomed = 0;
  let open = 0;
  let failedAttempts = 0;
  let reconnects = 0;
  /** Failed attempts by reason: an HTTP status and error code, or a socket error code. */
  const failures: Record<string, number> = {};
  const fail = (reason: string) => {
    failures[reason] = (failures[reason] ?? 0) + 1;
  };
  let samples: number[] = [];
  let missed = 0;
  let stopping = false;
  const sockets = new Set<WebSocket>();

  class Agent {
    private key?: CryptoKey | Uint8Array;
    private seq = 0;
    private failures = 0;
    everWelcomed = false;
    constructor(
      readonly a: StartCommand['agents'][number],
      readonly localAddress: string,
      readonly url: string,
    ) {}

    /** Connect token, as the agent's identity signs it (packages/agent/src/identity.ts). */
    private async token(): Promise<string> {
      this.key ??= await importJWK({ kty: 'OKP', crv: 'Ed25519', x: this.a.x, d: this.a.d }, 'EdDSA');
      const iat = Math.floor(Date.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
        .setSubject(this.a.hostName)
        .setAudience(CONNECT_AUDIENCE)
        .setIssuedAt(iat)
        .setExpirationTime(iat + 60)
        .setJti(randomUUID())
        .sign(this.key);
    }

    /** Resolves once welcomed, or false once this attempt failed (a retry is scheduled). */
    async connect(): Promise<boolean> {
      const ws = new WebSocket(this.url, {
        headers: { authorization: `Bearer ${await this.token()}` },
        localAddress: this.localAddress,
        perMessageDeflate: false,
      });
      sockets.add(ws);
      return new Promise<boolean>((settle) => {
        let settled = false;
        let beat: NodeJS.Timeout | undefined;
        let pingAt = 0;
        let retryAfterS = 0;
        let opened = false;
        const done = (ok: boolean) => {
          if (!settled) {
            settled = true;
            settle(ok);
          }
        };
        let reason = 'closed before welcome';
        ws.on('unexpected-response', (_req, res) => {
          retryAfterS = Number(res.headers['retry-after'] ?? 0);
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => {
            reason = `HTTP ${res.statusCode} ${/"code":"(\w+)"/.exec(body)?.[1] ?? ''}`.trim();
            ws.terminate();
          });
        });
        ws.on('open', () => {
          opened = true;
          open++;
          ws.send(
            JSON.stringify({
              type: 'hello',
              protocolVersion: PROTOCOL_VERSION,
              agentVersion: 'bench-lean',
              inventory: {
                hostname: `lean-${this.a.uid.slice(0, 8)}`,
                machineId: this.a.uid.replace(/-/g, ''),
                cpu: { model: 'Bench CPU', cores: 4, arch: 'x64' },
                memoryBytes: 8 * 2 ** 30,
                disks: [],
                nics: [],
                os: { name: 'Bench OS', version: '1', kernel: '6.1' },
                simulated: true,
              },
            }),
          );
        });
        ws.on('message', (data) => {
          const msg = JSON.parse(data.toString()) as { type: string; heartbeatIntervalSeconds?: number };
          if (msg.type !== 'welcome') return;
          welcomed++;
          this.everWelcomed = true;
          this.failures = 0;
          done(true);
          beat = setInterval(() => {
            // A ping still unanswered at the next beat is a miss (the agent drops the channel after a few).
            if (pingAt) missed++;
            pingAt = performance.now();
            ws.send(JSON.stringify({ type: 'heartbeat', seq: this.seq++ }));
            ws.ping();
          }, msg.heartbeatIntervalSeconds! * 1000);
        });
        ws.on('pong', () => {
          if (pingAt) samples.push(performance.now() - pingAt);
          pingAt = 0;
        });
        ws.on('error', (err) => {
          if (reason === 'closed before welcome') reason = (err as { code?: string }).code ?? err.message;
        });
        ws.on('close', () => {
          sockets.delete(ws);
          clearInterval(beat);
          if (opened) open--;
          const wasWelcomed = settled;
          if (wasWelcomed) welcomed--;
          else {
            failedAttempts++;
            fail(reason);
          }
          done(false);
          if (stopping) return;
          // Like the agent: reconnect after a random delay, backing off while attempts fail; a refusal's Retry-After wins.
          if (wasWelcomed) reconnects++;
          this.failures++;
          const backoff = retryAfterS ? retryAfterS * 1000 : Math.min(30_000, 1000 * 2 ** Math.min(this.failures - 1, 5)) * (0.5 + Math.random());
          setTimeout(() => void this.connect(), backoff);
        });
      });
    }
  }

  const agents = start.agents.map((a, i) => new Agent(a, start.localAddresses[i % start.localAddresses.length], urls[i % urls.length]));
  const progress = setInterval(() => process.send!({ type: 'progress', welcomed, open, failedAttempts, reconnects, failures } satisfies WorkerMessage), 1000);
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'rtt') {
      process.send!({ type: 'rtt', samples, missed } satisfies WorkerMessage);
      samples = [];
      missed = 0;
    } else if (m.cmd === 'stop') {
      stopping = true;
      clearInterval(progress);
      for (const ws of sockets) ws.terminate();
      process.disconnect();
      setTimeout(() => process.exit(0), 100);
    }
  });
  // Bounded waves: at most `wave` first connects in flight; a failed one retries on its own schedule.
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(start.wave, agents.length) }, async () => {
      while (next < agents.length && !stopping) {
        const agent = agents[next++];
        if (!(await agent.connect())) await sleep(50);
      }
    }),
  );
}

if (process.send && process.env.LEAN_AGENTS_WORKER === '1') await worker();
