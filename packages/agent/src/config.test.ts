import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentConfigError, DEFAULT_DATA_DIR, loadAgentConfig } from './config.js';

describe('loadAgentConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the YAML file and fills defaults', async () => {
    const file = join(dir, 'agent.yaml');
    await writeFile(file, 'server: https://cp.example.com\ntoken: abc\nsite: store-12\nlabels:\n  region: eu\n');
    const config = await loadAgentConfig(file, {});
    expect(config).toEqual({
      server: 'https://cp.example.com',
      token: 'abc',
      site: 'store-12',
      labels: { region: 'eu' },
      dataDir: DEFAULT_DATA_DIR,
      deviceRoot: '/',
      logLevel: 'info',
      pairingPage: { enabled: true, port: 5080 },
      troubleshoot: { remoteShell: true, logFiles: {}, logToFile: true },
    });
  });

  it('lets overrides win over the file, but undefined overrides do not erase', async () => {
    const file = join(dir, 'agent.yaml');
    await writeFile(file, 'server: https://cp.example.com\ntoken: from-file\ndataDir: /data/file\n');
    const config = await loadAgentConfig(file, { server: 'http://localhost:8080', token: undefined, dataDir: '/data/flag', deviceRoot: '/fake' });
    expect(config.server).toBe('http://localhost:8080');
    expect(config.token).toBe('from-file');
    expect(config.dataDir).toBe('/data/flag');
    expect(config.deviceRoot).toBe('/fake');
  });

  it('works from overrides alone', async () => {
    const config = await loadAgentConfig(undefined, { server: 'http://localhost:8080' });
    expect(config.server).toBe('http://localhost:8080');
  });

  it('names the file and every issue when invalid', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'server: ftp://x\nlogLevel: loud\nsurprise: 1\n');
    const err = await loadAgentConfig(file, {}).catch((e) => e);
    expect(err).toBeInstanceOf(AgentConfigError);
    expect(err.message).toContain(file);
    expect(err.message).toContain('server: must be an http(s) URL');
    expect(err.issues.map((i: { path: string }) => i.path).sort()).toEqual(['(root)', 'logLevel', 'server']);
  });

  it('requires a server', async () => {
    await expect(loadAgentConfig(undefined, {})).rejects.toThrow(/server/);
  });

  it('reports unreadable and non-mapping files clearly', async () => {
    await expect(loadAgentConfig(join(dir, 'missing.yaml'), {})).rejects.toThrow(/cannot read agent config .*missing\.yaml/);
    const file = join(dir, 'list.yaml');
    await writeFile(file, '- a\n- b\n');
    await expect(loadAgentConfig(file, {})).rejects.toThrow(/must be a YAML mapping/);
  });
});

describe('troubleshoot config', () => {
  it('reads the remote-shell switch, run-as user and named log files, and refuses bad names', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'agent-config-ts-'));
    try {
      const file = join(dir, 'agent.yaml');
      await writeFile(file, 'server: https://cp.example.com\ntroubleshoot:\n  remoteShell: false\n  runAs: edge\n  logFiles:\n    app: /var/log/app.log\n');
      expect((await loadAgentConfig(file)).troubleshoot).toEqual({ remoteShell: false, runAs: 'edge', logFiles: { app: '/var/log/app.log' }, logToFile: true });
      await writeFile(file, 'server: https://cp.example.com\ntroubleshoot:\n  runAs: "root; rm -rf /"\n  shell: yes\n');
      await expect(loadAgentConfig(file)).rejects.toThrow(/troubleshoot.runAs: must be a local user name/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
