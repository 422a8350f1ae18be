import {
  type ClusterSpec,
  DISRUPTIVE_CLASSES,
  type HostSpec,
  kubernetesSpecDigest,
  kubernetesVersionCore,
  type ManagersStatus,
  type OsSpec,
  type UpgradeState,
  type UpgradeStatus,
  UpgradeStrategy,
} from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { recordEvent } from '../../event/event.service.js';
import type { Db, Executor } from '../../store/db.js';
import { findHosts, type HostRow, insertStep } from '../cluster.repository.js';
import { MANAGED_SPEC_KEYS } from '../host-claims.js';
import { stableJson } from '../render.js';
import { baseSpec, classify } from './classify.js';
import { insertUpgrade, latestUpgrade, type PlannedNode, setUpgradeState, type UpgradeRow, upgradeSteps } from './upgrade.repository.js';

export const ACTIVE_STATES: UpgradeState[] = ['Staging', 'Rolling', 'Paused'];

export interface EngineInput {
  cluster: string;
  generation: number;
  spec: ClusterSpec;
  /** Nodes that finished provisioning (init/join step taken): the engine owns their specs. */
  joined: Set<string>;
  /** Revision the nodes ran before (the previous status.profileRevision). */
  previousRevision?: number;
  render(host: string): HostSpec;
  /**
   * OS image of a revision a rollout will move the cluster to (PRESTAGE_ANNOTATION): while no upgrade
   * is pending, every node downloads it stage-only (activate=false) ahead of its maintenance window.
   */
  prestage?: (host: string) => OsSpec | undefined;
  /** Writes a host's managed spec if it differs (and records `once.step` in the same transaction). */
  write(host: string, spec: HostSpec, once?: { step: string; reason: string; message: string }): Promise<void>;
}

export interface EngineResult {
  upgrade?: UpgradeRow;
  status?: UpgradeStatus;
  /** True while nodes still differ from the rendered revision (an upgrade is planned, running, failed or cancelled). */
  pending: boolean;
}

const managers = (h: HostRow | undefined): ManagersStatus => (JSON.parse(h?.status ?? '{}') as { agent?: { managers?: ManagersStatus } }).agent?.managers ?? {};
const observed = (h: HostRow | undefined) =>
  !!h && Number((JSON.parse(h.status) as { observedGeneration?: number }).observedGeneration ?? -1) >= Number(h.generation);
const online = (h: HostRow | undefined) => h?.connectivity === 'online';

export function managedSpec(h: HostRow | undefined): HostSpec | undefined {
  if (!h) return undefined;
  const spec = JSON.parse(h.spec) as Record<string, unknown>;
  const out = Object.fromEntries(MANAGED_SPEC_KEYS.filter((k) => spec[k] !== undefined).map((k) => [k, spec[k]]));
  return Object.keys(out).length ? (out as HostSpec) : undefined;
}

/**
 * What the node runs, for planning: a stage-only OS spec (a pre-staged or half-staged image) names
 * an image the node has not booted, so the OS is the digest the agent reports booted.
 */
function runningSpec(h: HostRow | undefined): HostSpec | undefined {
  const spec = managedSpec(h);
  const booted = managers(h).os;
  if (spec?.os?.activate !== false || !booted?.digest) return spec;
  return { ...spec, os: { ...spec.os, digest: booted.digest, image: booted.slots?.[booted.bootedSlot]?.image ?? spec.os.image } };
}

/** The node runs `target`: agent up and caught up, booted on its digest and committed, Kubernetes Ready at its version. */
function runs(h: HostRow | undefined, target: HostSpec, rebootId?: string): boolean {
  const m = managers(h);
  if (!online(h) || !observed(h)) return false;
  if (target.os && (m.os?.digest !== target.os.digest || m.os.phase !== 'Committed')) return false;
  if (rebootId && m.maintenance?.rebootId !== rebootId) return false;
  const k = target.kubernetes;
  if (!k) return true;
  // The configuration it runs, when the agent says (a status sent on receipt of the spec still shows the old one).
  if (m.kubernetes?.specDigest && m.kubernetes.specDigest !== kubernetesSpecDigest(k)) return false;
  return (
    m.kubernetes?.ready === true && m.kubernetes.phase === 'Ready' && kubernetesVersionCore(m.kubernetes.version ?? '') === kubernetesVersionCore(k.version)
  );
}

/**
 * Day-2 changes of a running cluster (docs/architecture.md "Cluster upgrades"): plans an upgrade
 * when the rendered specs differ from what the nodes were given, stages new OS images on every node
 * first, then takes control-plane nodes one at a time (only while every other control-plane node is
 * Ready) and workers within maxUnavailable: maintenance window (cordon, drain), new spec (slot switch,
 * trial boot), health gate, uncordon, done. Every step is a cluster_steps row written in the same
 * transaction as the spec that causes it, so a restarted server continues the same plan and never
 * starts a node twice. A node that falls back (or misses the health gate) stops the upgrade
 * (Failed, naming it) and is put back on its previous spec.
 */
export class UpgradeEngine {
  constructor(
    private readonly db: Db,
    private readonly log: Logger,
  ) {}

  async drive(input: EngineInput): Promise<EngineResult> {
    const { cluster, spec } = input;
    const nodes = spec.nodes.filter((n) => input.joined.has(n.host));
    let hosts = await this.hostMap(nodes.map((n) => n.host));
    const targets = new Map(nodes.map((n) => [n.host, input.render(n.host)]));
    // Idle (nothing pending): the target, plus a stage-only download of a pre-stage request's image
    // on nodes that report running the target's image (never a slot switch, cordon or drain).
    const idle = (host: string): HostSpec => {
      const target = targets.get(host)!;
      const stage = input.prestage?.(host);
      if (!stage || !target.os || stage.digest === target.os.digest || managers(hosts.get(host)).os?.digest !== target.os.digest) return target;
      return { ...target, os: { ...stage, activate: false } };
    };
    let u = await latestUpgrade(this.db, cluster);
    const inProgress = async (x: UpgradeRow) => {
      const steps = await upgradeSteps(this.db, cluster, x.id);
      return x.nodes.some((n) => steps.has(key(x, n.host, 'started')) && !steps.has(key(x, n.host, 'done')) && !steps.has(key(x, n.host, 'failed')));
    };
    // A newer spec supersedes an active upgrade once no node is mid-window.
    if (u && ACTIVE_STATES.includes(u.state) && u.generation !== input.generation && !(await inProgress(u))) {
      await this.finish(u, ACTIVE_STATES, 'Cancelled', 'UpgradeSuperseded', `superseded by generation ${input.generation}`);
      u = await latestUpgrade(this.db, cluster);
    }
    if (!u || (!ACTIVE_STATES.includes(u.state) && u.generation !== input.generation)) {
      const plan: PlannedNode[] = nodes.map((n) => {
        const from = baseSpec(runningSpec(hosts.get(n.host)));
        return { host: n.host, role: n.role, ...classify(from, targets.get(n.host)!), ...(from ? { from } : {}) };
      });
      if (plan.every((p) => p.change === 'no-op')) {
        for (const p of plan) await input.write(p.host, idle(p.host));
        return { ...(u ? { upgrade: u } : {}), pending: false };
      }
      // Control-plane nodes first, then workers, each in spec order.
      plan.sort((a, b) => Number(a.role === 'worker') - Number(b.role === 'worker'));
      const state: UpgradeState = plan.some((p) => p.change === 'repave') ? 'Staging' : 'Rolling';
      u = await this.db.transaction().execute(async (trx) => {
        const row = await insertUpgrade(trx, {
          cluster,
          generation: input.generation,
          fromRevision: input.previousRevision,
          toRevision: spec.profile.revision,
          state,
          nodes: plan,
        });
        await this.event(trx, cluster, 'Normal', 'UpgradeStarted', `upgrade ${row.id} to revision ${row.toRevision}: ${summary(plan)}`);
        return row;
      });
      this.log.info({ cluster, upgrade: u.id, plan: plan.map((p) => `${p.host}:${p.change}`) }, 'cluster upgrade planned');
    }
    await this.step(u, input, targets, hosts);
    hosts = await this.hostMap(nodes.map((n) => n.host));
    u = (await latestUpgrade(this.db, cluster))!;
    if (u.state === 'Succeeded' && u.generation === input.generation)
      for (const n of nodes) if (stableJson(managedSpec(hosts.get(n.host))) !== stableJson(idle(n.host))) await input.write(n.host, idle(n.host));
    const steps = await this.recordSeen(u, await upgradeSteps(this.db, cluster, u.id), targets, hosts);
    return { upgrade: u, status: this.statusOf(u, steps, hosts), pending: u.state !== 'Succeeded' };
  }

  /**
   * Records when a node inside its window was first seen draining, rebooting and on trial (its new
   * image, reboot or configuration answering), as `cluster_steps` rows beside staged/started/done/failed:
   * the times the upgrade timeline shows. Only what a status report showed is recorded (a phase shorter
   * than the reports between passes has no time), never a step after a later one, and each once (the
   * row's primary key), so a restarted server keeps the first time. Returns `steps` with them added.
   */
  private async recordSeen(u: UpgradeRow, steps: Map<string, string>, targets: Map<string, HostSpec>, hosts: Map<string, HostRow>) {
    const seen: [string, string][] = [];
    for (const n of u.nodes) {
      const has = (s: string) => steps.has(key(u, n.host, s));
      if (!has('started') || has('done') || has('failed')) continue;
      const h = hosts.get(n.host);
      const m = managers(h);
      const disruptive = DISRUPTIVE_CLASSES.includes(n.change);
      const target = targets.get(n.host) ?? n.from ?? {};
      const trial =
        !online(h) || !observed(h)
          ? false
          : n.change === 'repave'
            ? m.os?.digest === target.os?.digest && (m.os?.phase === 'Verifying' || m.os?.phase === 'Committed')
            : n.change === 'reboot'
              ? m.maintenance?.rebootId === `u${u.id}`
              : true;
      const rebooting =
        disruptive && ((observed(h) && (m.os?.phase === 'Rebooting' || m.maintenance?.phase === 'Rebooting')) || (!online(h) && has('draining')));
      const draining = disruptive && observed(h) && (m.maintenance?.cordoned === true || m.maintenance?.phase === 'Draining');
      const now = [trial && 'verifying', rebooting && 'rebooting', draining && 'draining'].find((s): s is string => !!s);
      // Steps in their order: a node seen later in its window gets no time for a step it passed unseen.
      if (now && !WINDOW_STEPS.slice(WINDOW_STEPS.indexOf(now)).some(has)) seen.push([n.host, now]);
    }
    if (seen.length === 0) return steps;
    await this.db.transaction().execute(async (trx) => {
      for (const [host, step] of seen) await insertStep(trx, u.cluster, key(u, host, step), host);
    });
    return upgradeSteps(this.db, u.cluster, u.id);
  }

  private async step(u: UpgradeRow, input: EngineInput, targets: Map<string, HostSpec>, hosts: Map<string, HostRow>): Promise<void> {
    const { cluster } = input;
    const strategy = UpgradeStrategy.parse(input.spec.upgradeStrategy ?? {});
    const steps = await upgradeSteps(this.db, cluster, u.id);
    const has = (h: string, s: string) => steps.has(key(u, h, s));
    const mark = (trx: Executor, h: string, s: string) => insertStep(trx, cluster, key(u, h, s), h);
    const started = (n: PlannedNode) => has(n.host, 'started') && !has(n.host, 'done') && !has(n.host, 'failed');
    const targetOf = (n: PlannedNode) => targets.get(n.host) ?? n.from ?? {};
    const rebootId = (n: PlannedNode) => (n.change === 'reboot' ? `u${u.id}` : undefined);

    // 1. Nodes inside their window: fallen back, timed out, or through the health gate.
    for (const n of u.nodes.filter(started)) {
      const h = hosts.get(n.host);
      const m = managers(h);
      const target = targetOf(n);
      const since = Date.parse(steps.get(key(u, n.host, 'started'))!);
      // Only a status that answers this spec counts (a retried node may still show its last fallback).
      const fellBack = observed(h) && m.os?.phase === 'FellBack' && m.os.digest !== target.os?.digest;
      const late = Date.now() - since > strategy.healthTimeoutSeconds * 1000;
      if (fellBack || late) {
        const why = fellBack
          ? `node ${n.host} fell back to slot ${m.os?.bootedSlot} (${m.os?.message ?? 'trial boot failed'})`
          : `node ${n.host} did not pass the health gate within ${strategy.healthTimeoutSeconds} s`;
        await this.db.transaction().execute(async (trx) => {
          if (!(await mark(trx, n.host, 'failed'))) return;
          await setUpgradeState(trx, cluster, u.id, [...ACTIVE_STATES, 'Cancelled'], 'Failed', { failedHost: n.host, message: why });
          await this.event(trx, cluster, 'Warning', 'UpgradeFailed', `upgrade ${u.id} to revision ${u.toRevision} stopped: ${why}`);
        });
        if (n.from) await input.write(n.host, n.from); // back on its previous image and configuration, uncordoned
        continue;
      }
      if (!runs(h, target, rebootId(n))) continue;
      if (managedSpec(h)?.maintenance) {
        await input.write(n.host, target); // uncordon
        continue;
      }
      if (managers(h).maintenance?.cordoned) continue;
      await this.db.transaction().execute(async (trx) => {
        if (await mark(trx, n.host, 'done')) await this.event(trx, cluster, 'Normal', 'NodeUpgraded', `${n.host} (${n.change}) runs revision ${u.toRevision}`);
      });
    }

    const fresh = await latestUpgrade(this.db, cluster);
    const state = fresh?.id === u.id ? fresh.state : u.state;
    // 2. A stopped upgrade leaves the nodes it did not start on their previous spec (a staged image stays unused).
    if (state === 'Failed' || state === 'Cancelled') {
      for (const n of u.nodes) if (!has(n.host, 'started') && n.from) await input.write(n.host, n.from);
      for (const n of u.nodes) if (has(n.host, 'failed') && n.from) await input.write(n.host, n.from);
      return;
    }
    if (state === 'Paused') return;

    // 3. Staging: every new OS image downloaded into the passive slot before the first drain.
    if (state === 'Staging') {
      let all = true;
      for (const n of u.nodes.filter((x) => x.change === 'repave' && !has(x.host, 'staged'))) {
        all = false;
        const h = hosts.get(n.host);
        const target = targetOf(n);
        const os = managers(h).os;
        if (
          os &&
          Object.values(os.slots ?? {}).some((s) => s.digest === target.os?.digest) &&
          os.phase !== 'Downloading' &&
          os.phase !== 'Writing' &&
          observed(h)
        ) {
          await this.db.transaction().execute(async (trx) => {
            if (await mark(trx, n.host, 'staged')) await this.event(trx, cluster, 'Normal', 'NodeStaged', `${n.host} staged ${target.os?.digest}`);
          });
          continue;
        }
        if (os?.phase === 'Failed' && observed(h) && managedSpec(h)?.os?.digest === target.os?.digest) {
          const why = `staging failed on ${n.host}: ${os.error?.message ?? os.message ?? 'unknown error'}`;
          await this.db.transaction().execute(async (trx) => {
            await setUpgradeState(trx, cluster, u.id, ['Staging'], 'Failed', { failedHost: n.host, message: why });
            await this.event(trx, cluster, 'Warning', 'UpgradeFailed', `upgrade ${u.id} stopped before any node was disrupted: ${why}`);
          });
          return;
        }
        const current = baseSpec(managedSpec(h)) ?? {};
        await input.write(n.host, { ...current, os: { ...target.os!, activate: false } });
      }
      if (!all) return;
      await this.db.transaction().execute(async (trx) => {
        if (await setUpgradeState(trx, cluster, u.id, ['Staging'], 'Rolling'))
          await this.event(trx, cluster, 'Normal', 'UpgradeRolling', `upgrade ${u.id}: every node staged its image; rolling`);
      });
    }

    // 4. Start nodes: no-ops at once, config reloads at once, the rest one window at a time.
    const start = async (n: PlannedNode) => {
      const target = targetOf(n);
      const disruptive = n.change === 'repave' || n.change === 'reboot';
      const spec: HostSpec = disruptive
        ? {
            ...target,
            maintenance: { cordon: true, drain: { timeoutSeconds: strategy.drainTimeoutSeconds }, ...(rebootId(n) ? { rebootId: rebootId(n) } : {}) },
          }
        : target;
      await input.write(n.host, spec, {
        step: key(u, n.host, 'started'),
        reason: 'NodeUpgradeStarted',
        message: `${n.host} (${n.role}): ${n.change}${disruptive ? ` - cordon, drain, ${n.change === 'repave' ? 'trial boot of the new image' : 'reboot'}` : ''} (${n.reasons.join(', ')})`,
      });
    };
    const pending = u.nodes.filter((n) => !has(n.host, 'started') && !has(n.host, 'done') && !has(n.host, 'failed'));
    for (const n of pending.filter((x) => x.change === 'no-op')) {
      await input.write(n.host, targetOf(n));
      await this.db.transaction().execute(async (trx) => {
        await mark(trx, n.host, 'started');
        await mark(trx, n.host, 'done');
      });
    }
    for (const n of pending.filter((x) => x.change === 'config-reload')) await start(n);
    const windows = u.nodes.filter((n) => started(n) && n.change !== 'config-reload' && n.change !== 'no-op');
    const waiting = pending.filter((x) => x.change !== 'no-op' && x.change !== 'config-reload');
    const cps = waiting.filter((n) => n.role === 'control-plane');
    if (cps.length > 0) {
      if (windows.length === 0) {
        const next = cps[0];
        // Quorum guard: every other control-plane node must be Ready before one goes down.
        const others = input.spec.nodes.filter((x) => x.role === 'control-plane' && x.host !== next.host);
        const healthy = others.every((x) => online(hosts.get(x.host)) && managers(hosts.get(x.host)).kubernetes?.ready === true);
        if (healthy) await start(next);
      }
    } else {
      const free = strategy.maxUnavailable - windows.filter((n) => n.role === 'worker').length;
      if (!windows.some((n) => n.role === 'control-plane')) for (const n of waiting.slice(0, Math.max(0, free))) await start(n);
    }
    const after = await upgradeSteps(this.db, cluster, u.id);
    if (u.nodes.every((n) => after.has(key(u, n.host, 'done'))))
      await this.finish(u, ['Rolling'], 'Succeeded', 'UpgradeSucceeded', `every node runs revision ${u.toRevision}`);
  }

  private async finish(u: UpgradeRow, from: UpgradeState[], to: UpgradeState, reason: string, message: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      if (await setUpgradeState(trx, u.cluster, u.id, from, to, { message }))
        await this.event(trx, u.cluster, to === 'Succeeded' ? 'Normal' : 'Warning', reason, `upgrade ${u.id} to revision ${u.toRevision}: ${message}`);
    });
  }

  statusOf(u: UpgradeRow, steps: Map<string, string>, hosts: Map<string, HostRow>): UpgradeStatus {
    const nodes = u.nodes.map((n) => {
      const has = (s: string) => steps.has(key(u, n.host, s));
      const m = managers(hosts.get(n.host));
      let phase: UpgradeStatus['nodes'][number]['phase'] = 'Pending';
      if (has('done')) phase = n.change === 'no-op' ? 'Skipped' : 'Done';
      else if (has('failed')) phase = m.os?.phase === 'FellBack' || m.os?.error ? 'FellBack' : 'Failed';
      else if (has('started'))
        phase =
          m.maintenance?.phase === 'Draining' || m.maintenance?.phase === 'Cordoned'
            ? 'Draining'
            : m.os?.phase === 'Rebooting' || m.maintenance?.phase === 'Rebooting' || !online(hosts.get(n.host))
              ? 'Rebooting'
              : 'Verifying';
      else if (has('staged')) phase = 'Staged';
      const message = has('failed') ? (u.failedHost === n.host ? u.message : undefined) : undefined;
      const times = Object.fromEntries(TIMED_STEPS.filter(has).map((s) => [s, steps.get(key(u, n.host, s))]));
      return { host: n.host, role: n.role, change: n.change, reasons: n.reasons, phase, ...(message ? { message } : {}), times };
    });
    return {
      id: u.id,
      state: u.state,
      ...(u.fromRevision !== undefined ? { fromRevision: u.fromRevision } : {}),
      toRevision: u.toRevision,
      generation: u.generation,
      startedAt: u.createdAt,
      ...(u.message ? { message: u.message } : {}),
      ...(u.failedHost ? { failedNode: u.failedHost } : {}),
      nodes,
    };
  }

  private async hostMap(names: string[]): Promise<Map<string, HostRow>> {
    return new Map((await findHosts(this.db, names)).map((h) => [h.name, h]));
  }

  private event(db: Executor, cluster: string, type: 'Normal' | 'Warning', reason: string, message: string) {
    return recordEvent(db, { involvedObject: { kind: 'Cluster', name: cluster }, type, reason, message, source: 'controller/upgrade' });
  }
}

/** The steps of a node's window in order (after `started`); a retry of a failed node clears them. */
export const WINDOW_STEPS = ['draining', 'rebooting', 'verifying', 'done', 'failed'];
/** Step rows whose time the status shows, by the name of its `times` field. */
const TIMED_STEPS = ['staged', 'started', 'draining', 'rebooting', 'verifying', 'done', 'failed'] as const;

export function key(u: { id: number }, host: string, step: string): string {
  return `u${u.id}:${host}:${step}`;
}

function summary(plan: PlannedNode[]): string {
  return plan.map((p) => `${p.host} ${p.change}`).join(', ');
}
