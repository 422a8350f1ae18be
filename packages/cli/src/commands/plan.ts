import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { parseManifest } from '../manifest.js';
import { renderTable, toYaml } from '../output.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';

interface PlanOptions extends ConnectionFlags {
  file: string;
  output?: string;
}

interface Plan {
  cluster: string;
  fromRevision?: number;
  toRevision: number;
  nodes: { host: string; role: string; change: string; reasons: string[] }[];
  removed: string[];
}

/** `cluster shop-1: revision 2 -> 3`; a cluster that never ran has no revision to come from. */
export function planHeadline(plan: Pick<Plan, 'cluster' | 'fromRevision' | 'toRevision'>): string {
  return plan.fromRevision === undefined
    ? `cluster ${plan.cluster}: revision ${plan.toRevision} (new: the cluster has not run any revision yet)`
    : `cluster ${plan.cluster}: revision ${plan.fromRevision} -> ${plan.toRevision}`;
}

/** `edgeplane plan cluster NAME -f new.yaml`: the dry run of a cluster change (POST /api/v1/clusters/<name>/plan). */
export function registerPlan(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('plan')
    .summary('show what a cluster change would do to each node (dry run)')
    .description(
      'Dry run of a changed cluster manifest: validates it like an update would and shows, per node in the order the upgrade takes them, ' +
        'the change class (repave: new OS image; reboot: new Kubernetes binaries; service-restart: Kubernetes configuration; ' +
        'config-reload: add-ons only; no-op) and what differs. Nothing is changed.',
    )
    .argument('<kind>', 'cluster')
    .argument('<name>', 'name of the cluster')
    .requiredOption('-f, --file <file>', 'the changed cluster manifest (YAML or JSON), - for stdin')
    .option('-o, --output <format>', 'table, json or yaml', 'table');
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'edgeplane plan cluster shop-1 -f shop-1.yaml',
        'edgeplane get cluster shop-1 -o yaml | sed "s/revision: 3/revision: 4/" | edgeplane plan cluster shop-1 -f -',
      ),
    )
    .action(async (kind: string, name: string, opts: PlanOptions) => {
      if (!['cluster', 'clusters'].includes(kind)) throw new CliError(`only clusters can be planned, not "${kind}"`);
      const text = opts.file === '-' ? readFileSync(0, 'utf8') : readFileSync(opts.file, 'utf8');
      const [manifest] = parseManifest(text, opts.file);
      if (!manifest) throw new CliError(`${opts.file}: no cluster manifest in it`);
      const client = clientFor(opts, ctx.io);
      const plan = await client.request<Plan>('POST', `clusters/${encodeURIComponent(name)}/plan`, { body: { spec: manifest.spec } });
      if (opts.output === 'json') return void ctx.io.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
      if (opts.output === 'yaml') return void ctx.io.stdout.write(toYaml(plan));
      ctx.io.stdout.write(`${planHeadline(plan)}\n`);
      ctx.io.stdout.write(
        plan.nodes.length
          ? renderTable(
              ['HOST', 'ROLE', 'CHANGE', 'WHAT'],
              plan.nodes.map((n) => [n.host, n.role, n.change, n.reasons.join(', ') || '-']),
            )
          : 'no node changes\n',
      );
      if (plan.removed.length) {
        // A host deleted meanwhile is only taken out of the spec: nothing is drained or reset.
        const gone = new Set<string>();
        for (const host of plan.removed) if (!(await client.find('edgehosts', host))) gone.add(host);
        const left = plan.removed.filter((h) => !gone.has(h));
        if (left.length) ctx.io.stdout.write(`removed (drained, taken out of Kubernetes, reset to ready): ${left.join(', ')}\n`);
        if (gone.size) ctx.io.stdout.write(`removed from the spec (the host no longer exists): ${[...gone].join(', ')}\n`);
      }
    });
}

/** `edgeplane reset host NAME`: POST /api/v1/edgehosts/<name>/reset. */
export function registerReset(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('reset')
    .summary('wipe what the managers set up on a host (not in a cluster)')
    .description(
      'Reset an edge host that belongs to no cluster: its Kubernetes node state and managed configuration are wiped; its identity and ' +
        'registration are kept, and it stays in the pool, ready for a cluster. Refused (HostInCluster) while a cluster owns the host: ' +
        'remove it from the cluster instead, which drains and resets it.',
    )
    .argument('<kind>', 'host')
    .argument('<name>', 'name of the host');
  withConnectionOptions(cmd)
    .addHelpText('after', examples('edgeplane reset host nuc-01'))
    .action(async (kind: string, name: string, opts: ConnectionFlags) => {
      if (!['host', 'hosts', 'edgehost', 'edgehosts'].includes(kind)) throw new CliError(`only hosts can be reset, not "${kind}"`);
      await clientFor(opts, ctx.io).request('POST', `edgehosts/${encodeURIComponent(name)}/reset`);
      ctx.io.stdout.write(`host/${name} reset\n`);
    });
}
