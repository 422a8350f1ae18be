import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { extract, list as listTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { startAgentProcess } from '../support/remote-session.js';
import { type TestServer, testServer } from '../support/server.js';

/** The edgeplane CLI and a real agent process: exec, logs, support bundle, get remotesessions. */
describe('remote troubleshooting from the CLI against an agent process', () => {
  let ts: TestServer;
  let agent: Awaited<ReturnType<typeof startAgentProcess>>;
  let dir: string;
  let env: Record<string, string>;
  const appSecret = 'hunter2-app-password-7f3a9';

  beforeAll(async () => {
    ts = await testServer('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'edgeplane-rs-cli-'));
    const appLog = join(dir, 'app.log');
    // A secret in a log line must be redacted in the bundle too.
    writeFileSync(appLog, `db connect password=${appSecret}\n${Array.from({ length: 10 }, (_, i) => `app line ${i + 1}`).join('\n')}\n`);
    agent = await startAgentProcess(ts, `logLevel: info\ntroubleshoot:\n  runAs: ${userInfo().username}\n  logFiles:\n    app: ${appLog}\n`);
    env = { EDGEPLANE_CONFIG: join(dir, 'cli.yaml'), EDGEPLANE_SERVER: ts.url, EDGEPLANE_TOKEN: ts.admin };
  }, 60_000);
  afterAll(async () => {
    await agent?.cleanup();
    await ts?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exec passes stdout, stderr and the exit code through', async () => {
    const r = await cli(['exec', agent.host, '--reason', 'INC-1 check', '--', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 5'], env);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('to-out\n');
    expect(r.out).toContain('to-err');
    const noReason = await cli(['exec', agent.host, '--', 'true'], env);
    expect(noReason.code).not.toBe(0);
    expect(noReason.out).toMatch(/--reason/);
  });

  it('logs shows the last lines of a named log file and of the agent log', async () => {
    const r = await cli(['logs', agent.host, '--source', 'app', '--lines', '3'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('app line 8\napp line 9\napp line 10\n');
    const own = await cli(['logs', agent.host, '--lines', '2'], env);
    expect(own.code).toBe(0);
    expect(own.stdout.trim().split('\n')).toHaveLength(2);
    const bad = await cli(['logs', agent.host, '--source', 'nope'], env);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/refused the session: unknown log source "nope"/);
  });

  it('support-bundle writes a tar.gz with state, config, logs and inventory and no secret values', async () => {
    const out = join(dir, 'bundle.tar.gz');
    const r = await cli(['support-bundle', agent.host, '-o', out, '--reason', 'INC-1 vendor escalation'], env);
    expect(r.code, r.out).toBe(0);
    const names: string[] = [];
    await listTar({ file: out, onReadEntry: (e) => names.push(e.path) });
    for (const f of ['config.yaml', 'identity.json', 'spec.json', 'state.json', 'inventory.json', 'logs/agent.log', 'logs/app.log', 'README.txt'])
      expect(names).toContain(`support-bundle/${f}`);
    const x = join(dir, 'x');
    rmSync(x, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(x));
    await extract({ file: out, cwd: x });
    const all = names
      .filter((n) => !n.endsWith('/'))
      .map((n) => readFileSync(join(x, n), 'utf8'))
      .join('\n');
    const agentYaml = readFileSync(join(agent.dataDir, 'agent.yaml'), 'utf8');
    const regToken = agentYaml.match(/token: (\S+)/)![1];
    const identity = JSON.parse(readFileSync(join(agent.dataDir, 'data', 'identity.json'), 'utf8'));
    for (const secret of [regToken, identity.privateKey.d, ts.admin, appSecret]) expect(all).not.toContain(secret);
    expect(all).toContain('[REDACTED]');
    expect(JSON.parse(readFileSync(join(x, 'support-bundle/identity.json'), 'utf8')).publicKey.x).toBe(identity.privateKey.x);
    expect(JSON.parse(readFileSync(join(x, 'support-bundle/state.json'), 'utf8'))).toMatchObject({ hostName: agent.host, connected: true });
  });

  it('shell runs on a real terminal: raw mode, window size changes follow (SIGWINCH), exit code passes through', async () => {
    const pty = await import('node-pty');
    const term = pty.spawn(process.execPath, ['--import', 'tsx', 'packages/cli/src/bin.ts', 'shell', agent.host, '--reason', 'INC-1 tty'], {
      cols: 100,
      rows: 30,
      cwd: join(import.meta.dirname, '../..'),
      env: { ...process.env, ...env, NO_COLOR: '1' } as Record<string, string>,
    });
    let screen = '';
    term.onData((d) => {
      screen += d;
    });
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    const see = async (re: RegExp) => {
      const end = Date.now() + 15_000;
      while (!re.test(screen)) {
        if (Date.now() > end) throw new Error(`no ${re} on screen:\n${screen.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    try {
      await see(/Connected to/);
      term.write('stty size\r');
      await see(/\b30 100\b/);
      term.resize(132, 43);
      await new Promise((r) => setTimeout(r, 300));
      term.write('stty size\r');
      await see(/\b43 132\b/);
      term.write('exit 4\r');
      expect(await exited).toBe(4);
    } finally {
      term.kill();
    }
  });

  it('lists sessions and the audit log shows who, why and how it ended', async () => {
    const r = await cli(['get', 'remotesessions'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/HOST\s+KIND\s+USER\s+PHASE/);
    expect(r.stdout).toContain('exec');
    const audit = await cli(['audit', 'list', '--action', 'session.end', '-o', 'json'], env);
    const ends = JSON.parse(audit.stdout) as { reason: string; details: { exitCode: number } }[];
    expect(ends.find((e) => e.reason === 'INC-1 check')?.details.exitCode).toBe(5);
    expect((await cli(['audit', 'verify'], env)).code).toBe(0);
  });
});
