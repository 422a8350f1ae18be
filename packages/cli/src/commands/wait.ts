import type { Command } from 'commander';
import type { Resource } from '../api-client.js';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { getPath } from '../output.js';
import { parseDuration } from '../parse.js';
import { progressBar } from '../progress.js';
import { type CommandContext, clientFor, examples, kindOrThrow, withConnectionOptions } from './common.js';

interface WaitOptions extends ConnectionFlags {
  for: string;
  timeout: number;
  interval: number;
}

/** `phase=Running` -> status.phase; `condition=Ready` -> conditions[type=Ready].status True; else a dotted path. */
export function parseCondition(text: string): { describe: string; met(r: Resource): boolean; current(r: Resource): string } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new CliError(`--for "${text}": use phase=<Phase>, condition=<Type> or <path>=<value>`);
  const key = text.slice(0, eq).trim();
  const value = text.slice(eq + 1).trim();
  if (key === 'condition') {
    const status = (r: Resource) => ((r.status?.conditions as { type: string; status: string }[] | undefined) ?? []).find((c) => c.type === value)?.status;
    return { describe: text, met: (r) => status(r) === 'True', current: (r) => `condition ${value}=${status(r) ?? 'Unknown'}` };
  }
  const path = key === 'phase' ? 'status.phase' : key;
  return { describe: text, met: (r) => String(getPath(r, path)) === value, current: (r) => `${key}=${String(getPath(r, path) ?? '<none>')}` };
}

type NodeStatus = { host: string; phase: string; ready: boolean; message?: string };

/** One progress line for a cluster: phase, a count of Ready nodes, and each node's phase. */
export function clusterProgress(r: Resource, tty: boolean): string {
  const nodes = (r.status?.nodes as NodeStatus[] | undefined) ?? [];
  const total = ((r.spec?.nodes as unknown[] | undefined) ?? nodes).length;
  const ready = nodes.filter((n) => n.ready).length;
  const phase = String(r.status?.phase ?? 'Pending');
  const each = nodes.map((n) => `${n.host} ${n.phase}`).join(', ');
  return tty ? `${progressBar(ready, total, `nodes Ready  ${phase}`, 20)}  ${each}` : `${phase}: ${ready}/${total} nodes Ready${each ? ` (${each})` : ''}`;
}

export function registerWait(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('wait')
    .summary('wait until a resource reaches a state (e.g. a cluster is Running)')
    .description(
      'Wait until a resource meets a condition, showing progress. For clusters the progress shows each node: a bar redrawn in place on a terminal, ' +
        'one line per change otherwise. Exits 0 when the condition is met, 1 on timeout.\n\n' +
        'Conditions: phase=<Phase> (status.phase), condition=<Type> (a status condition is True), or <dotted.path>=<value>.',
    )
    .argument('<kind>', 'kind: plural, singular or short name')
    .argument('<name>', 'name of the resource')
    .requiredOption('--for <condition>', 'what to wait for, e.g. phase=Running')
    .option('--timeout <duration>', 'give up after this long (90s, 10m, 1h)', parseDuration, 600_000)
    .option('--interval <duration>', 'how often to look', parseDuration, 1000);
  withConnectionOptions(cmd)
    .addHelpText('after', examples('edgeplane wait cluster shop-1 --for phase=Running --timeout 20m', 'edgeplane wait cluster shop-1 --for condition=Ready'))
    .action(async (kindName: string, name: string, opts: WaitOptions) => {
      const kind = kindOrThrow(kindName);
      const cond = parseCondition(opts.for);
      const client = clientFor(opts, ctx.io);
      const out = ctx.io.stderr;
      const tty = !!out.isTTY;
      const deadline = Date.now() + opts.timeout;
      let last = '';
      for (;;) {
        const r = await client.get(kind.plural, name);
        const line = kind.kind === 'Cluster' ? clusterProgress(r, tty) : `${kind.singular}/${name}: ${cond.current(r)}`;
        if (line !== last) {
          out.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
          last = line;
        }
        if (cond.met(r)) {
          if (tty) out.write('\n');
          ctx.io.stdout.write(`${kind.plural}/${name} condition met: ${cond.describe}\n`);
          return;
        }
        if (Date.now() >= deadline) {
          if (tty) out.write('\n');
          const why = ((r.status?.conditions as { type: string; message?: string }[] | undefined) ?? []).find((c) => c.type === 'Ready')?.message;
          throw new CliError(`timed out waiting for ${kind.plural}/${name} ${cond.describe}${why ? `; last: ${why}` : ''}`);
        }
        await new Promise((res) => setTimeout(res, Math.min(opts.interval, Math.max(0, deadline - Date.now()))));
      }
    });
}
