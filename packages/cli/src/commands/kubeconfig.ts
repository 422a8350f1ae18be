import { chmodSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';

interface KubeconfigOptions extends ConnectionFlags {
  output?: string;
}

export function registerKubeconfig(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('kubeconfig')
    .summary("print or save a cluster's admin kubeconfig")
    .description(
      "Print the admin kubeconfig of a cluster, or write it to a file (mode 0600) with -o. Its server is the cluster's control-plane endpoint. " +
        'Available once the first control-plane node has initialized; needs the admin or operator role.',
    )
    .argument('<cluster>', 'name of the cluster')
    .option('-o, --output <file>', 'write to this file instead of stdout');
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      examples('edgeplane kubeconfig shop-1 > shop-1.yaml', 'edgeplane kubeconfig shop-1 -o ~/.kube/shop-1 && KUBECONFIG=~/.kube/shop-1 kubectl get nodes'),
    )
    .action(async (cluster: string, opts: KubeconfigOptions) => {
      const client = clientFor(opts, ctx.io);
      const r = await client.request<{ kubeconfig: string; server?: string }>('GET', `clusters/${encodeURIComponent(cluster)}/kubeconfig`);
      if (opts.output) {
        writeFileSync(opts.output, r.kubeconfig, { mode: 0o600 });
        chmodSync(opts.output, 0o600); // an existing file keeps its mode otherwise
        ctx.io.stderr.write(`kubeconfig for cluster ${cluster} (server ${r.server ?? '?'}) written to ${opts.output}\n`);
      } else ctx.io.stdout.write(r.kubeconfig);
    });
}
