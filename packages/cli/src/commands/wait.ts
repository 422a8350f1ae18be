import type { Command } from 'commander';
import type { Resource } from '../api-client.js';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { formatDurationExact, getPath } from '../output.js';
import { durationOption } from '../parse.js';
import { ACTIVE_UPGRADE_STATES, clusterView, LiveView, rolloutView, type UpgradeStatus, type View } from '../progress.js';
import { type CommandContext, clientFor, examples, kindOrThrow, withConnectionOptions } from './common.js';

interface WaitOptions extends ConnectionFlags {
  for: string;
  timeout: number;
  interval: number;
}

export interface WaitCondition {
  describe: string;
  /** What is waited for: a status field, a condition, a cluster's upgrade, the object's deletion. */
  kind: 'path' | 'condition' | 'upgrade' | 'delete';
  /** `r` is undefined once the object is gone. */
  met(r: Resource | undefined): boolean;
  current(r: Resource): string;
}

type Cond = { type: string; status: string; reason?: string; message?: string };
const conditionsOf = (r: Resource) => (r.status?.conditions as Cond[] | undefined) ?? [];

/** The status describes the current spec: status.observedGeneration (a cluster's controller, a host's agent) is the current generation. */
function observed(r: Resource): boolean {
  const seen = r.status?.observedGeneration;
  return typeof seen !== 'number' || seen >= Number(r.metadata.generation);
}

/**
 * State of the upgrade to the cluster's current spec: the state of the upgrade made for this
 * generation; an older one's state while it still runs (it is superseded next); Succeeded when
 * the controller saw this generation and found nothing to roll (the cluster is Running at the
 * spec's revision); Pending before that.
 */
export function upgradeState(r: Resource): string {
  const u = r.status?.upgrade as UpgradeStatus | undefined;
  const generation = Number(r.metadata.generation);
  if (u && u.generation === generation) return u.state;
  if (u && ACTIVE_UPGRADE_STATES.includes(u.state)) return u.state;
  const revision = (r.spec?.profile as { revision?: number } | undefined)?.revision;
  if (observed(r) && r.status?.phase === 'Running' && r.status?.profileRevision === revision) return 'Succeeded';
  return 'Pending';
}

/**
 * Parses --for, in kubectl's words where kubectl has them:
 * `phase=Running` (status.phase), `condition=Ready` or `condition=Ready=False` (a status condition),
 * `upgrade=Succeeded` (a cluster's upgrade to its current spec), `delete`, `jsonpath={.status.x}=v`
 * or a plain dotted path `status.x=v`.
 */
export function parseCondition(text: string): WaitCondition {
  if (text.trim() === 'delete') return { describe: 'delete', kind: 'delete', met: (r) => r === undefined, current: () => 'exists' };
  const eq = text.indexOf('=');
  if (eq <= 0) throw new CliError(`--for "${text}": use phase=<Phase>, condition=<Type>[=<Status>], upgrade=<State>, delete or <path>=<value>`);
  const key = text.slice(0, eq).trim();
  const value = text.slice(eq + 1).trim();
  if (key === 'condition') {
    const [type, wanted = 'True'] = value.split('=');
    const status = (r: Resource) => conditionsOf(r).find((c) => c.type === type)?.status;
    return {
      describe: text,
      kind: 'condition',
      met: (r) => !!r && observed(r) && status(r)?.toLowerCase() === wanted.toLowerCase(),
      current: (r) => `condition ${type}=${status(r) ?? 'Unknown'}`,
    };
  }
  if (key === 'upgrade') {
    return { describe: text, kind: 'upgrade', met: (r) => !!r && upgradeState(r) === value, current: (r) => `upgrade ${upgradeState(r)}` };
  }
  if (key === 'jsonpath') {
    const m = /^\{\.?([^}]+)\}=(.*)$/.exec(value);
    if (!m) throw new CliError(`--for "${text}": use jsonpath={.status.phase}=<value>`);
    return pathCondition(text, m[1], m[2]);
  }
  // phase= and condition= describe the current spec only once its controller or agent saw it: right after
  // an apply, the Running phase of the previous spec does not count (as kstatus reads observedGeneration).
  if (key === 'phase') return pathCondition(text, 'status.phase', value, observed);
  return pathCondition(text, key, value);
}

function pathCondition(text: string, path: string, value: string, current: (r: Resource) => boolean = () => true): WaitCondition {
  return {
    describe: text,
    kind: 'path',
    met: (r) => !!r && current(r) && String(getPath(r, path)) === value,
    current: (r) => `${path}=${String(getPath(r, path) ?? '<none>')}`,
  };
}

/**
 * Why the object will not get to the condition by itself, or undefined. A Failed cluster (once the
 * controller has seen its current spec: a fixed spec just applied is not a failure yet), a failed
 * upgrade to the current spec (or a cancelled one, when waiting for the upgrade), a Failed or
 * Aborted rollout, a host whose OS update fell back or failed (once its agent saw the current spec).
 */
export function terminalFailure(kind: string, r: Resource, cond: WaitCondition): string | undefined {
  // A failed object can still go away: deleting a Failed cluster is how one starts over.
  if (cond.kind === 'delete') return undefined;
  const s = r.status ?? {};
  if (kind === 'Cluster') {
    const u = s.upgrade as UpgradeStatus | undefined;
    if (u && u.generation === Number(r.metadata.generation) && (u.state === 'Failed' || (u.state === 'Cancelled' && cond.kind === 'upgrade'))) {
      const where = u.failedNode ? ` on ${u.failedNode}` : '';
      return `upgrade ${u.id} to revision ${u.toRevision} ${u.state}${where}${u.message ? `: ${u.message}` : ''} (edgeplane retry cluster ${r.metadata.name} tries again)`;
    }
    if (s.phase === 'Failed' && observed(r)) {
      const ready = conditionsOf(r).find((c) => c.type === 'Ready');
      return `cluster is Failed${ready?.message ? `: ${ready.message}` : ''}`;
    }
  }
  if (kind === 'Rollout' && (s.phase === 'Failed' || s.phase === 'Aborted')) {
    const why = [s.stopReason, s.message].filter((x) => typeof x === 'string' && x).join(': ');
    return `rollout is ${s.phase}${why ? `: ${why}` : ''}`;
  }
  if (kind === 'EdgeHost') {
    const os = s.os as { phase?: string; upToDate?: boolean; message?: string } | undefined;
    // Not before the agent has seen the current spec: `retry host` writes a new one, and the
    // fallback it answers stays in the status until the agent reports again.
    if (os && !os.upToDate && (os.phase === 'FellBack' || os.phase === 'Failed') && observed(r))
      return `os update ${os.phase}${os.message ? `: ${os.message}` : ''}`;
  }
  return undefined;
}

/** What `wait` shows while it waits. */
function viewOf(kind: { kind: string; singular: string }, r: Resource, cond: WaitCondition): View {
  if (kind.kind === 'Cluster') return clusterView(r);
  if (kind.kind === 'Rollout') return rolloutView(r);
  const os = kind.kind === 'EdgeHost' ? (r.status?.os as { phase?: string } | undefined)?.phase : undefined;
  const line = `${kind.singular}/${r.metadata.name}: ${cond.current(r)}${os ? ` (os ${os})` : ''}`;
  return { line, block: [line] };
}

export function registerWait(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('wait')
    .summary('wait until a resource reaches a state (a cluster Running, an upgrade Succeeded)')
    .description(
      'Wait until a resource meets a condition, showing progress: on a terminal a live view redrawn in place (a bar, then each ' +
        "node's phase, or each upgrading node's upgrade phase, or each rollout cluster's state); otherwise one line per change. " +
        'Exits 0 when the condition is met; 1 on timeout, and at once (with the reason) when the resource cannot get there by ' +
        'itself: a Failed cluster, a failed upgrade, a Failed or Aborted rollout, a host whose OS update fell back.',
    )
    .argument('<kind>', 'kind: plural, singular or short name')
    .argument('<name>', 'name of the resource')
    .requiredOption('--for <condition>', 'what to wait for, e.g. phase=Running, upgrade=Succeeded')
    .addOption(durationOption('--timeout <duration>', 'give up after this long (90s, 10m, 1h)', '10m'))
    .addOption(durationOption('--interval <duration>', 'how often to look', '1s'));
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      '\nConditions (--for, as in kubectl wait):\n' +
        '  phase=<Phase>                 status.phase, e.g. phase=Running\n' +
        '  condition=<Type>[=<Status>]   a status condition (Status defaults to True)\n' +
        '  upgrade=Succeeded             a cluster runs its current spec: the upgrade the last\n' +
        '                                change started has finished (met at once when the\n' +
        '                                change needed none)\n' +
        '  delete                        the resource is gone\n' +
        '  jsonpath={.path}=<value>      any field, e.g. jsonpath={.status.profileRevision}=3\n' +
        '  <path>=<value>                the same, e.g. status.profileRevision=3\n' +
        examples(
          'edgeplane wait cluster shop-1 --for phase=Running --timeout 20m',
          'edgeplane apply -f shop-1.yaml && edgeplane wait cluster shop-1 --for upgrade=Succeeded',
          'edgeplane wait cluster shop-1 --for condition=Ready',
          'edgeplane wait rollout shops-rev-3 --for phase=Succeeded --timeout 2h',
          'edgeplane wait host nuc-01 --for status.os.upToDate=true',
          'edgeplane wait cluster shop-1 --for delete',
        ),
    )
    .action(async (kindName: string, name: string, opts: WaitOptions) => {
      const kind = kindOrThrow(kindName);
      const cond = parseCondition(opts.for);
      if (cond.kind === 'upgrade' && kind.kind !== 'Cluster') throw new CliError('--for upgrade=<State> is for clusters');
      const client = clientFor(opts, ctx.io);
      const view = new LiveView(ctx.io.stderr);
      const deadline = Date.now() + opts.timeout;
      // Ctrl+C between two looks ends the live view on its own line (the shell prompt comes after it).
      const interrupted = ctx.io.waitForShutdown();
      try {
        for (;;) {
          const r = cond.kind === 'delete' ? await client.find(kind.plural, name) : await client.get(kind.plural, name);
          if (r) view.update(viewOf(kind, r, cond));
          if (cond.met(r)) {
            view.finish();
            ctx.io.stdout.write(`${kind.plural}/${name} condition met: ${cond.describe}\n`);
            return;
          }
          const failure = r && terminalFailure(kind.kind, r, cond);
          if (failure) throw new CliError(`${kind.plural}/${name} will not reach ${cond.describe}: ${failure}`);
          if (Date.now() >= deadline) {
            const why = r && conditionsOf(r).find((c) => c.type === 'Ready')?.message;
            throw new CliError(
              `timed out waiting for ${kind.plural}/${name} ${cond.describe} (${formatDurationExact(opts.timeout)})${why ? `; last: ${why}` : ''}`,
            );
          }
          let timer: ReturnType<typeof setTimeout> | undefined;
          const slept = new Promise<undefined>(
            (res) => (timer = setTimeout(() => res(undefined), Math.min(opts.interval, Math.max(0, deadline - Date.now())))),
          );
          const signal = await Promise.race([slept, interrupted]);
          clearTimeout(timer);
          if (signal) throw new CliError(`interrupted by ${signal} while waiting for ${kind.plural}/${name} ${cond.describe}`, signal === 'SIGINT' ? 130 : 143);
        }
      } finally {
        view.finish();
      }
    });
}
