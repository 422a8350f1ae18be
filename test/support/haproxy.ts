import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import freePort from './free-port.js';

export interface HaproxyBackend {
  name: string;
  /** http://127.0.0.1:PORT of a replica. */
  url: string;
}

export interface Haproxy {
  /** http://127.0.0.1:PORT of the frontend: what agents, the CLI and API clients use. */
  url: string;
  /** The generated configuration (docs/scale.md shows the same settings). */
  config: string;
  /** Output of the haproxy process (alerts and warnings; health check transitions). */
  output(): string;
  stop(): Promise<void>;
}

export interface HaproxyOptions {
  /** Health check interval; default 2000 ms. */
  checkIntervalMs?: number;
  /** Connections at once; default 4000. */
  maxConn?: number;
}

/**
 * The configuration of HAProxy in front of Edgeplane replicas. HTTP mode passes WebSocket upgrades
 * through; `timeout tunnel` then governs an upgraded agent channel or watch (agents heartbeat well
 * within it). Health checks ask `/readyz`, which answers 503 while a replica starts, drains or loses
 * its store. `leastconn` suits long-lived channels; `redispatch` with retries sends a connect that
 * hit a dead replica to another one before the health check noticed.
 * HAProxy 2.6 configuration manual: https://docs.haproxy.org/2.6/configuration.html (option httpchk,
 * http-check expect, timeout tunnel, option redispatch).
 * Not `on-marked-down shutdown-sessions`: a draining replica hands its agents off itself.
 */
export function haproxyConfig(port: number, backends: HaproxyBackend[], o: HaproxyOptions = {}): string {
  const inter = o.checkIntervalMs ?? 2000;
  return [
    'global',
    // Each proxied connection takes two descriptors; HAProxy refuses to start above the open-file limit.
    `  maxconn ${o.maxConn ?? 4000}`,
    'defaults',
    '  mode http',
    '  option redispatch',
    '  retries 3',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout tunnel 1h',
    'frontend edgeplane',
    `  bind 127.0.0.1:${port}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance leastconn',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    `  default-server check inter ${inter}ms fall 1 rise 2`,
    ...backends.map((b) => `  server ${b.name} ${new URL(b.url).host}`),
    '',
  ].join('\n');
}

/** Starts HAProxy (Debian package haproxy) in the foreground with a generated configuration. */
export async function startHaproxy(backends: HaproxyBackend[], o: HaproxyOptions = {}): Promise<Haproxy> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  const config = haproxyConfig(port, backends, o);
  writeFileSync(file, config);
  // -c: refuse a broken configuration with HAProxy's own message instead of a process that exits.
  execFileSync('haproxy', ['-c', '-q', '-f', file]);
  const proc: ChildProcess = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  const killOnExit = () => proc.kill('SIGKILL');
  process.on('exit', killOnExit);
  const url = `http://127.0.0.1:${port}`;
  // Listening once it answers (a 503 while no replica is up yet counts).
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited: ${out}`);
    const ok = await fetch(`${url}/healthz`).then(
      () => true,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`haproxy did not listen within 10 s: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    config,
    output: () => out,
    async stop() {
      process.off('exit', killOnExit);
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
