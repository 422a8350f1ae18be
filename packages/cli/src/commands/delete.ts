import type { Command } from 'commander';
import type { ApiClient, Resource } from '../api-client.js';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { formatDurationExact } from '../output.js';
import { durationOption } from '../parse.js';
import { type CommandContext, clientFor, examples, kindOrThrow, knownKindsText, withConnectionOptions } from './common.js';

interface DeleteOptions extends ConnectionFlags {
  force?: boolean;
  timeout: number;
}

/** The server's 202 answer to a forced host delete (cluster/host-removal.ts). */
interface HostRemoval {
  kind: 'HostRemoval';
  host: string;
  cluster: string;
  vm?: string;
  steps: string[];
}

const POLL_MS = 1000;

export function registerDelete(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('delete')
    .summary('delete resources by name')
    .description(
      `Delete one or more resources of a kind by name.\n\nA host that a cluster depends on (a node, a VM node, an appliance running VMs) is refused (HostInCluster). With --force, a node or VM node leaves its cluster first the way scale-in does (drained, its Kubernetes node and etcd member removed, reset), the cluster converges to the smaller size, then the host is deleted; the command waits for that and prints each step. A deleted device may register again with its credential.\n\nKinds: ${knownKindsText()}.`,
    )
    .argument('<kind>', 'kind: plural, singular or short name')
    .argument('<names...>', 'names of the resources to delete')
    .option('--force', 'hosts only: take a cluster node out of its cluster first, then delete it')
    .addOption(durationOption('--timeout <duration>', 'with --force: how long to wait for the host to leave its cluster', '10m'));
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      examples('edgeplane delete token shop-installers', 'edgeplane delete host nuc-01 nuc-02', 'edgeplane delete host nuc-03 --force --timeout 15m'),
    )
    .action(async (kindName: string, names: string[], opts: DeleteOptions) => {
      const kind = kindOrThrow(kindName);
      if (opts.force && kind.kind !== 'EdgeHost') throw new CliError('--force is for hosts only (edgeplane delete host NAME --force)');
      const client = clientFor(opts, ctx.io);
      for (const name of names) {
        if (!opts.force) {
          await client.delete(kind.plural, name);
          ctx.io.stdout.write(`${kind.plural}/${name} deleted\n`);
          continue;
        }
        // The device may register again at once, as a new host of the same name: gone means "not this uid".
        const uid = (await client.get(kind.plural, name)).metadata.uid as string | undefined;
        const answer = await client.request<Resource | HostRemoval>('DELETE', `${kind.plural}/${encodeURIComponent(name)}`, { query: { force: 'true' } });
        if (answer?.kind === 'HostRemoval') await followRemoval(client, answer as HostRemoval, uid, opts.timeout, ctx);
        ctx.io.stdout.write(`${kind.plural}/${name} deleted\n`);
      }
    });
}

/** Waits until the host left its cluster and is gone and the cluster runs on the remaining nodes; prints each change. */
async function followRemoval(client: ApiClient, removal: HostRemoval, uid: string | undefined, timeoutMs: number, ctx: CommandContext): Promise<void> {
  const { host, cluster } = removal;
  const out = ctx.io.stdout;
  out.write(`edgehosts/${host} is leaving cluster ${cluster}${removal.vm ? ` (VM ${removal.vm})` : ''}:\n`);
  for (const [i, step] of removal.steps.entries()) out.write(`  ${i + 1}. ${step}\n`);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  const say = (line: string) => {
    if (line === last) return;
    last = line;
    out.write(`${line}\n`);
  };
  for (let hostGone = false; ; ) {
    if (!hostGone) {
      const h = await client.find('edgehosts', host);
      if (!h || h.metadata.uid !== uid) {
        hostGone = true;
        say(`edgehosts/${host} left cluster ${cluster} and was deleted`);
      } else {
        const k = (h.status as { agent?: { managers?: { kubernetes?: { phase?: string; message?: string } } } }).agent?.managers?.kubernetes;
        say(`edgehosts/${host}: ${h.status?.connectivity ?? '?'}, node ${k?.phase ?? 'unknown'}${k?.message ? `: ${k.message}` : ''}`);
      }
    }
    if (hostGone) {
      const c = await client.find('clusters', cluster);
      if (!c) return;
      const status = c.status as { phase?: string; nodes?: unknown[] };
      const wanted = ((c.spec as { nodes?: unknown[]; vms?: unknown[] }).vms ?? (c.spec as { nodes?: unknown[] }).nodes ?? []).length;
      say(`clusters/${cluster}: ${status.phase ?? '?'}, ${status.nodes?.length ?? 0}/${wanted} node(s)`);
      if (status.phase === 'Running' && (status.nodes?.length ?? 0) === wanted) return;
      if (status.phase === 'Failed')
        throw new CliError(`clusters/${cluster} is Failed after the removal of ${host}; see edgeplane describe cluster ${cluster}`);
    }
    if (Date.now() >= deadline)
      throw new CliError(
        `timed out after ${formatDurationExact(timeoutMs)} waiting for ${host} to leave cluster ${cluster}; last: ${last}. The removal goes on on the server: follow it with edgeplane get host ${host} and edgeplane describe cluster ${cluster}`,
      );
    await new Promise((res) => setTimeout(res, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
  }
}
