import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentStatus, HostSpec } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../agent.js';
import { AgentConfig } from '../config.js';
import { SimDevice } from '../device/sim/sim-device.js';
import { saveSpec } from '../spec-store.js';
import { waitFor } from '../testing/test-server.js';
import { type Manager, type ManagerContext, ManagerFailure, type ManagerName } from './manager.js';
import { createManagers, ManagerRunner } from './runner.js';

const log = pino({ level: 'silent' });
const DIGEST = `sha256:${'a'.repeat(64)}`;
const STATUS: Record<ManagerName, unknown> = {
  maintenance: { phase: 'None', cordoned: false },
  os: { phase: 'Idle', bootedSlot: 'A', activeSlot: 'A', slots: {} },
  kubernetes: { phase: 'Pending', ready: false },
  addons: { phase: 'Pending', applied: [] },
  virt: { phase: 'Idle', domains: [] },
};

/** A manager that records its calls; `behave` may block or fail a call. */
class RecordingManager implements Manager {
  constructor(
    readonly name: ManagerName,
    readonly calls: string[],
    private readonly behave: (call: 'prepare' | 'apply', desired: unknown, ctx: ManagerContext) => Promise<void> = async () => {},
  ) {}
  async prepare(desired: unknown, ctx: ManagerContext) {
    this.calls.push(`${this.name}.prepare`);
    await this.behave('prepare', desired, ctx);
  }
  async apply(desired: unknown, ctx: ManagerContext) {
    this.calls.push(`${this.name}.apply:${JSON.stringify(desired ?? null)}`);
    await this.behave('apply', desired, ctx);
  }
  async status() {
    return STATUS[this.name];
  }
}

const spec = (digest = DIGEST): HostSpec => ({ os: { image: 'r.local/os:1', digest }, addons: { items: [] } });

describe('ManagerRunner', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'ep-runner-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const runner = (managers: Manager[], reports: AgentStatus[] = []) =>
    new ManagerRunner({
      device: new SimDevice({ root: dataDir }),
      dataDir,
      log,
      managers,
      report: (s) => reports.push(s),
      emitEvent: () => {},
      retry: { baseMs: 10, capMs: 20 },
    });

  it('prepares every manager first, then applies in the order os -> kubernetes -> addons, and reports their status', async () => {
    const calls: string[] = [];
    const reports: AgentStatus[] = [];
    const r = runner(
      ['addons', 'os', 'kubernetes'].map((n) => new RecordingManager(n as ManagerName, calls)),
      reports,
    );
    await r.submit(spec(), 1);
    expect(calls).toEqual([
      'os.prepare',
      'kubernetes.prepare',
      'addons.prepare',
      `os.apply:${JSON.stringify(spec().os)}`,
      'kubernetes.apply:null',
      'addons.apply:{"items":[]}',
    ]);
    expect(reports.at(-1)).toEqual({ managers: { os: STATUS.os, kubernetes: STATUS.kubernetes, addons: STATUS.addons } });
  });

  it('aborts the run in progress when a newer spec arrives and converges to the newer one', async () => {
    const calls: string[] = [];
    let aborted = false;
    const os = new RecordingManager('os', calls, async (call, desired, ctx) => {
      if (call === 'apply' && (desired as { digest: string }).digest === DIGEST) {
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        aborted = true;
        ctx.signal.throwIfAborted();
      }
    });
    const r = runner([os, new RecordingManager('kubernetes', calls)]);
    const first = r.submit(spec(), 1);
    await waitFor(() => calls.includes(`os.apply:${JSON.stringify(spec().os)}`));
    const newer = spec(`sha256:${'b'.repeat(64)}`);
    await r.submit(newer, 2);
    await first;
    expect(aborted).toBe(true);
    // the first run never reached kubernetes.apply; the second ran to the end
    expect(calls.filter((c) => c.startsWith('kubernetes.apply'))).toHaveLength(1);
    expect(calls.at(-2)).toBe(`os.apply:${JSON.stringify(newer.os)}`);
  });

  it('retries a retryable failure with backoff, and stops at a fatal one with the error in status', async () => {
    const calls: string[] = [];
    let failures = 2;
    const flaky = new RecordingManager('kubernetes', calls, async (call) => {
      if (call === 'prepare' && failures-- > 0) throw new Error('service manager busy');
    });
    const reports: AgentStatus[] = [];
    await runner([new RecordingManager('os', calls), flaky], reports).submit(spec(), 1);
    expect(calls.filter((c) => c === 'kubernetes.prepare')).toHaveLength(3);
    expect(reports.some((s) => s.managers?.kubernetes?.error?.message === 'service manager busy' && s.managers.kubernetes.error.retryable)).toBe(true);
    expect(reports.at(-1)?.managers?.kubernetes?.error).toBeUndefined();

    const fatal = new RecordingManager('os', [], async () => {
      throw new ManagerFailure({ phase: 'prepare', component: 'os', retryable: false, message: 'image refused' });
    });
    const calls2: string[] = [];
    const reports2: AgentStatus[] = [];
    await runner([fatal, new RecordingManager('addons', calls2)], reports2).submit(spec(), 1);
    expect(calls2).toEqual([]); // a fatal os failure stops the run before later managers
    expect(reports2.at(-1)?.managers?.os?.error).toEqual({ phase: 'prepare', component: 'os', retryable: false, message: 'image refused' });
  });

  it('resumes the persisted spec when the agent starts, without a server', async () => {
    await saveSpec(dataDir, { generation: 7, spec: spec() });
    const calls: string[] = [];
    const config = AgentConfig.parse({ server: 'http://127.0.0.1:9', token: 'tok', dataDir });
    const agent = new Agent({
      config,
      device: new SimDevice({ root: dataDir }),
      logger: log,
      managers: [new RecordingManager('os', calls)],
      timing: { backoffBaseMs: 1000, backoffCapMs: 1000 },
    });
    await agent.start();
    try {
      await waitFor(() => calls.includes(`os.apply:${JSON.stringify(spec().os)}`), 5000, 'resumed run');
      expect(agent.observedGeneration).toBe(7);
    } finally {
      await agent.stop();
    }
  });

  it('converges again to the last spec when a manager reports drift, and only that manager applies', async () => {
    const calls: string[] = [];
    let drift = false;
    /** Converged once applied; the virt one drifts when told to. */
    class Converging extends RecordingManager {
      applied = false;
      async converged() {
        return this.applied && !(this.name === 'virt' && drift);
      }
      async drifted() {
        return this.name === 'virt' && this.applied && drift;
      }
      async apply(desired: unknown, ctx: ManagerContext) {
        await super.apply(desired, ctx);
        this.applied = true;
        if (this.name === 'virt') drift = false;
      }
    }
    const os = new Converging('os', calls);
    const virt = new Converging('virt', calls);
    const r = runner([os, virt]);
    // Before any spec there is nothing to converge to.
    expect(await r.reconcileDrift()).toBeUndefined();
    const s: HostSpec = { ...spec(), virt: { vms: [] } };
    await r.submit(s, 1);
    expect(calls.filter((c) => c.endsWith('.apply') || c.includes('.apply:'))).toHaveLength(2);
    calls.length = 0;
    // No drift: nothing runs.
    expect(await r.reconcileDrift()).toBeUndefined();
    expect(calls).toEqual([]);
    drift = true;
    await await r.reconcileDrift();
    expect(calls).toEqual(['virt.prepare', 'virt.apply:{"vms":[]}']);
  });

  it('createManagers has maintenance (cordon, drain) first, then os', async () => {
    const managers = await createManagers(new SimDevice({ root: dataDir }), { dataDir });
    expect(managers.slice(0, 2).map((m) => m.name)).toEqual(['maintenance', 'os']);
    const order = ['maintenance', 'os', 'kubernetes', 'addons', 'virt'];
    expect(managers.map((m) => m.name)).toEqual([...managers.map((m) => m.name)].sort((a, b) => order.indexOf(a) - order.indexOf(b)));
  });
});
