import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, AgentConfig, createAgentLogger, SimDevice } from '@edgeplane/agent';
import { ApiClient } from '../../packages/cli/src/api-client.js';
import { type AttachedSession, openSession, type SessionEnd } from '../../packages/cli/src/remote-session-client.js';
import { type CliProcess, runCli } from './cli-process.js';
import { waitFor } from './device.js';
import type { TestServer } from './server.js';

const timing = { backoffBaseMs: 20, backoffCapMs: 200, slowRetryMs: 100, stableAfterMs: 1000, closeTimeoutMs: 300 };

/** A real in-process agent on a simulated device, registered (auto-approved) with the test server. */
export async function startAgent(
  ts: TestServer,
  troubleshoot: Record<string, unknown> = {},
): Promise<{ agent: Agent; host: string; dataDir: string; cleanup(): Promise<void> }> {
  const name = `t${Math.random().toString(36).slice(2, 8)}`;
  const tok = await ts.api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec: { autoApprove: true } });
  if (tok.status !== 201) throw new Error(`token: ${JSON.stringify(tok.body)}`);
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeplane-rs-agent-'));
  const config = AgentConfig.parse({ server: ts.url, token: tok.body.status.token, dataDir, logLevel: 'info', troubleshoot });
  const agent = new Agent({
    config,
    device: new SimDevice({ root: join(dataDir, 'device') }),
    logger: createAgentLogger(config, { stdout: false }),
    timing,
  });
  await agent.start();
  await waitFor(() => agent.connected && agent.state === 'ready', 10_000);
  await waitFor(async () => (await ts.api('GET', `/api/v1/edgehosts/${agent.hostName}`)).body.status.connectivity === 'online', 10_000);
  return {
    agent,
    host: agent.hostName!,
    dataDir,
    async cleanup() {
      await agent.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An operator session with collected output. */
export interface Op {
  id: string;
  session: AttachedSession;
  stdout(): string;
  stderr(): string;
  /** Stdout bytes received (counted even when not collected); stderr (a simulated host's notice) is not counted. */
  bytes(): number;
  end: Promise<SessionEnd>;
  /** Waits until stdout matches. */
  see(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

export async function operator(ts: TestServer, host: string, body: Parameters<typeof openSession>[3], token = ts.admin, collect = true): Promise<Op> {
  const client = new ApiClient({ server: ts.url, token });
  const { session, attached } = await openSession(client, token, host, body);
  let out = '';
  let err = '';
  let bytes = 0;
  attached.on('output', (stream, data) => {
    if (stream === 'stdout') bytes += data.length;
    if (!collect) return;
    if (stream === 'stdout') out += data.toString('utf8');
    else err += data.toString('utf8');
  });
  return {
    id: session.metadata.name,
    session: attached,
    stdout: () => out,
    stderr: () => err,
    bytes: () => bytes,
    end: attached.done,
    see: (re, timeoutMs = 10_000) => waitFor(() => out.match(re) ?? undefined, timeoutMs, 20),
  };
}

/** `edgeplane agent --simulated` as its own process, registered (auto-approved) with the test server. */
export async function startAgentProcess(ts: TestServer, yaml: string): Promise<{ host: string; dataDir: string; proc: CliProcess; cleanup(): Promise<void> }> {
  const name = `p${Math.random().toString(36).slice(2, 8)}`;
  const tok = await ts.api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec: { autoApprove: true, labels: { agent: name } } });
  const dataDir = mkdtempSync(join(tmpdir(), 'edgeplane-rs-proc-'));
  const configFile = join(dataDir, 'agent.yaml');
  writeFileSync(configFile, `server: ${ts.url}\ntoken: ${tok.body.status.token}\n${yaml}`);
  const proc = runCli(['agent', '--simulated', '--config', configFile, '--data-dir', join(dataDir, 'data')]);
  const host = await waitFor(async () => {
    const list = await ts.api('GET', `/api/v1/edgehosts?labelSelector=agent%3D${name}`);
    const h = list.body.items?.[0];
    return h?.status.connectivity === 'online' && h.status.state === 'ready' ? (h.metadata.name as string) : undefined;
  }, 20_000);
  return {
    host,
    dataDir,
    proc,
    async cleanup() {
      await proc.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
