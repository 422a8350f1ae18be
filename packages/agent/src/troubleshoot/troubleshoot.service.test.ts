import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SESSION_WINDOW_SLACK_BYTES, type SessionFromAgent } from '@edgeplane/protocol';
import { pino } from 'pino';
import { extract } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentConfig } from '../config.js';
import { LinuxDevice } from '../device/linux/linux-device.js';
import { SimDevice } from '../device/sim/sim-device.js';
import { createSupportBundle, redactObject, redactText } from './support-bundle.js';
import { TroubleshootService } from './troubleshoot.service.js';

const waitFor = async <T>(fn: () => T | undefined, ms = 5000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('TroubleshootService (agent side of remote sessions)', () => {
  const dirs: string[] = [];
  let svc: TroubleshootService | undefined;
  afterEach(() => {
    svc?.closeAll('test over');
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  const make = (troubleshoot: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ts-svc-'));
    dirs.push(dataDir);
    const sent: SessionFromAgent[] = [];
    svc = new TroubleshootService({
      config: AgentConfig.parse({ server: 'http://127.0.0.1:1', dataDir, troubleshoot, ...extra }),
      logger: pino({ level: 'silent' }),
      send: (m) => {
        sent.push(m);
        return true;
      },
      bundle: { state: () => ({}), inventory: async () => ({}) },
      device: new LinuxDevice(),
    });
    return { svc, sent, dataDir };
  };
  const open = (svc: TroubleshootService, extra: Record<string, unknown>) =>
    svc.handle({
      type: 'session.open',
      id: 's1',
      kind: 'exec',
      cols: 80,
      rows: 24,
      ttlSeconds: 60,
      idleTimeoutSeconds: 60,
      window: 256 * 1024,
      ...extra,
    } as never);
  const exitOf = (sent: SessionFromAgent[]) => waitFor(() => sent.find((m) => m.type === 'session.exit'));

  it('ends a session at its TTL by itself, even if the server never says so', async () => {
    const { svc, sent } = make();
    const t = Date.now();
    open(svc, { command: ['sleep', '30'], ttlSeconds: 1 });
    expect(await exitOf(sent)).toMatchObject({ reason: 'ttl', code: null });
    expect(Date.now() - t).toBeLessThan(3000);
    expect(svc.openSessions).toBe(0);
  });

  it('ends an idle shell after the idle timeout; input keeps it alive', async () => {
    const { svc, sent } = make();
    open(svc, { kind: 'shell', idleTimeoutSeconds: 1 });
    await waitFor(() => sent.find((m) => m.type === 'session.opened'));
    const t = Date.now();
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 500));
      svc.handle({ type: 'session.input', id: 's1', data: Buffer.from('\n').toString('base64') });
    }
    expect(sent.some((m) => m.type === 'session.exit')).toBe(false);
    expect(await exitOf(sent)).toMatchObject({ reason: 'idle' });
    expect(Date.now() - t).toBeGreaterThanOrEqual(2000);
  });

  it('refuses shells and commands when the site disabled remote shell, but still serves logs', async () => {
    const { svc, sent } = make({ remoteShell: false });
    open(svc, { kind: 'shell' });
    expect(await waitFor(() => sent.find((m) => m.type === 'session.refused'))).toMatchObject({ reason: expect.stringMatching(/remote shell is disabled/) });
    svc.handle({
      type: 'session.open',
      id: 's2',
      kind: 'logs',
      logs: { source: 'nope', follow: false, lines: 5 },
      cols: 80,
      rows: 24,
      ttlSeconds: 9,
      idleTimeoutSeconds: 9,
      window: 1024,
    });
    expect(await waitFor(() => sent.find((m) => m.type === 'session.refused' && m.id === 's2'))).toMatchObject({
      reason: expect.stringMatching(/unknown log source/),
    });
  });

  it("serves an appliance's VM serial consoles as vm:<domain> logs; nothing outside them", async () => {
    const logsOpen = (svc: TroubleshootService, id: string, source: string) =>
      svc.handle({
        type: 'session.open',
        id,
        kind: 'logs',
        logs: { source, follow: false, lines: 2 },
        cols: 80,
        rows: 24,
        ttlSeconds: 9,
        idleTimeoutSeconds: 9,
        window: 65536,
      });
    const textOf = (sent: SessionFromAgent[], id: string) =>
      sent
        .filter((m) => m.type === 'session.output' && m.id === id)
        .map((m) => Buffer.from((m as { data: string }).data, 'base64').toString())
        .join('');
    const refusal = (sent: SessionFromAgent[], id: string) => waitFor(() => sent.find((m) => m.type === 'session.refused' && m.id === id));

    const { svc, sent, dataDir } = make({}, { virt: { libvirtUri: 'qemu:///system' } });
    mkdirSync(join(dataDir, 'virt', 'console'), { recursive: true });
    writeFileSync(join(dataDir, 'virt', 'console', 'ep-shop-cp1.log'), 'BdsDxe: loading\nWelcome to GRUB!\nEdgeplane: booting committed slot A\n');
    writeFileSync(join(dataDir, 'secret.txt'), 'not a log\n');
    logsOpen(svc, 'c1', 'vm:ep-shop-cp1');
    await waitFor(() => sent.find((m) => m.type === 'session.exit' && m.id === 'c1'));
    expect(textOf(sent, 'c1')).toBe('Welcome to GRUB!\nEdgeplane: booting committed slot A\n');
    // Path tricks and unknown VMs are unknown sources; the refusal lists what exists.
    for (const [id, source] of [
      ['c2', 'vm:../secret'],
      ['c3', 'vm:../../secret.txt'],
      ['c4', 'vm:ep-shop-w9'],
    ])
      logsOpen(svc, id, source);
    for (const id of ['c2', 'c3', 'c4'])
      expect(await refusal(sent, id)).toMatchObject({ reason: expect.stringMatching(/unknown log source .*vm:ep-shop-cp1/) });
    expect(textOf(sent, 'c2') + textOf(sent, 'c3')).toBe('');

    // A host that runs no VMs has no vm: sources, even with a console directory in its data dir.
    svc.closeAll('next host');
    const plain = make();
    mkdirSync(join(plain.dataDir, 'virt', 'console'), { recursive: true });
    writeFileSync(join(plain.dataDir, 'virt', 'console', 'ep-shop-cp1.log'), 'x\n');
    logsOpen(plain.svc, 'p1', 'vm:ep-shop-cp1');
    expect(await refusal(plain.sent, 'p1')).toMatchObject({ reason: expect.stringMatching(/unknown log source/) });
  });

  it('sends no more than its window (plus one read) until the server acks, then finishes', async () => {
    const { svc, sent } = make();
    const window = 64 * 1024;
    open(svc, { command: ['sh', '-c', 'head -c 2000000 /dev/zero'], window });
    const outBytes = () => sent.filter((m) => m.type === 'session.output').reduce((n, m) => n + Buffer.from((m as { data: string }).data, 'base64').length, 0);
    await waitFor(() => outBytes() >= window || undefined);
    await new Promise((r) => setTimeout(r, 300));
    expect(outBytes()).toBeLessThanOrEqual(window + SESSION_WINDOW_SLACK_BYTES);
    expect(sent.some((m) => m.type === 'session.exit')).toBe(false);
    let acked = 0;
    await waitFor(() => {
      const n = outBytes();
      if (n > acked) {
        svc.handle({ type: 'session.ack', id: 's1', bytes: n - acked });
        acked = n;
      }
      return sent.find((m) => m.type === 'session.exit');
    }, 10_000);
    expect(outBytes()).toBe(2_000_000);
  });
});

describe('support bundle redaction', () => {
  it('replaces values under secret-looking keys and secret shapes in text', () => {
    const found = new Set<string>();
    const out = redactObject({ server: 'http://x', token: 'eprt_abcdefghijkl', nested: { dbPassword: 'p4ss', ok: 1 }, list: [{ apiKey: 'k' }] }, found);
    expect(out).toEqual({ server: 'http://x', token: '[REDACTED]', nested: { dbPassword: '[REDACTED]', ok: 1 }, list: [{ apiKey: '[REDACTED]' }] });
    const text = redactText('used eprt_abcdefghijkl; Authorization: Bearer abc.def.ghi123; password=p4ss-word x', found);
    expect(text).not.toMatch(/eprt_abcdefghijkl|abc\.def\.ghi123|p4ss-word/);
    expect(text).toContain('password=[REDACTED] x');
  });

  it("redacts secrets inside the stored spec (a cluster node's join token, addon values) and wherever else they appear", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeplane-bundle-test-'));
    try {
      const dataDir = join(dir, 'data');
      mkdirSync(dataDir);
      const joinToken = 'K10aa11bb22cc33dd44::server:deadbeefcafe';
      const chartPassword = 'grafana-admin-pw-91x';
      const spec = {
        generation: 3,
        receivedAt: new Date().toISOString(),
        spec: { kubernetes: { cluster: 'shop', token: joinToken }, addons: [{ name: 'mon', chart: { values: { adminPassword: chartPassword } } }] },
      };
      writeFileSync(join(dataDir, 'spec.json'), JSON.stringify(spec, null, 2));
      const log = join(dir, 'agent.log');
      writeFileSync(log, `joining with ${joinToken}\n`);
      const vmLog = join(dir, 'ep-shop-cp1.log');
      writeFileSync(vmLog, 'Edgeplane: booting committed slot A\n');
      const config = AgentConfig.parse({ server: 'http://127.0.0.1:1', dataDir });
      const logFiles = { agent: log, 'vm:ep-shop-cp1': vmLog };
      const stream = await createSupportBundle({ config, logFiles, state: () => ({}), inventory: async () => ({}) });
      const x = join(dir, 'x');
      mkdirSync(x);
      await new Promise<void>((resolve, reject) =>
        stream
          .pipe(extract({ cwd: x }))
          .on('finish', resolve)
          .on('error', reject),
      );
      const specOut = readFileSync(join(x, 'support-bundle/spec.json'), 'utf8');
      const all = specOut + readFileSync(join(x, 'support-bundle/logs/agent.log'), 'utf8');
      expect(all).not.toContain(joinToken);
      expect(all).not.toContain(chartPassword);
      expect(JSON.parse(specOut).spec.kubernetes).toEqual({ cluster: 'shop', token: '[REDACTED]' });
      // An appliance's VM console (log source vm:<domain>) is in the bundle under a name without colons.
      expect(readFileSync(join(x, 'support-bundle/logs/vm-ep-shop-cp1.log'), 'utf8')).toBe('Edgeplane: booting committed slot A\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('remote sessions on a simulated host', () => {
  it("say on their first line that shells and commands run in the simulator's sandbox; logs say nothing extra", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ts-sim-'));
    const device = new SimDevice({ root: dataDir });
    const sent: SessionFromAgent[] = [];
    const svc = new TroubleshootService({
      config: AgentConfig.parse({ server: 'http://127.0.0.1:1', dataDir }),
      logger: pino({ level: 'silent' }),
      send: (m) => sent.push(m) > 0,
      bundle: { state: () => ({}), inventory: async () => ({}) },
      device,
    });
    const base = { type: 'session.open', cols: 80, rows: 24, ttlSeconds: 30, idleTimeoutSeconds: 30, window: 256 * 1024 } as const;
    const outputOf = (id: string) =>
      sent
        .filter((m) => m.type === 'session.output' && m.id === id)
        .map((m) => [(m as { stream: string }).stream, Buffer.from((m as { data: string }).data, 'base64').toString()]);
    try {
      writeFileSync(join(dataDir, 'agent.log'), 'a log line\n');
      svc.handle({ ...base, id: 'exec', kind: 'exec', command: ['echo', 'out'] });
      svc.handle({ ...base, id: 'shell', kind: 'shell' });
      svc.handle({ ...base, id: 'logs', kind: 'logs', logs: { source: 'agent', follow: false, lines: 5 } });
      await waitFor(() => sent.find((m) => m.type === 'session.exit' && m.id === 'exec'));
      const user = (sent.find((m) => m.type === 'session.opened' && m.id === 'exec') as { user: string }).user;
      const notice = device.sessionNotice(user);
      expect(notice).toMatch(/bubblewrap sandbox/);
      expect(outputOf('exec')).toEqual([
        ['stderr', `${notice}\n`],
        ['stdout', 'out\n'],
      ]);
      const shellFirst = await waitFor(() => outputOf('shell')[0]);
      expect(shellFirst).toEqual(['stdout', `${notice}\r\n`]);
      await waitFor(() => sent.find((m) => m.type === 'session.exit' && m.id === 'logs'));
      expect(
        outputOf('logs')
          .map(([, text]) => text)
          .join(''),
      ).toBe('a log line\n');
    } finally {
      svc.closeAll('test over');
      await device.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
