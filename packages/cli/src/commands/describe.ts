import type { Command } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { eventsOf, renderClusterDescribe, renderDescribe, renderRolloutDescribe } from '../describe-output.js';
import { type CommandContext, clientFor, examples, kindOrThrow, knownKindsText, withConnectionOptions } from './common.js';

export function registerDescribe(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('describe')
    .summary('show one resource in detail, with its events')
    .description(
      'Show one resource in detail, like kubectl describe: its metadata, then what it asks for and where it is, then the events ' +
        "about it, oldest first (the latest 30). Clusters show a table of nodes, the latest upgrade with each node's change and " +
        'phase, and conditions; rollouts show their batches and the state of each cluster.' +
        `\n\nKinds: ${knownKindsText()}.`,
    )
    .argument('<kind>', 'kind: plural, singular or short name')
    .argument('<name>', 'name of the resource');
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'edgeplane describe host nuc-01',
        'edgeplane describe token shop-installers',
        'edgeplane describe cluster shop-1',
        'edgeplane describe rollout shops-rev-3',
      ),
    )
    .action(async (kindName: string, name: string, opts: ConnectionFlags) => {
      const kind = kindOrThrow(kindName);
      const client = clientFor(opts, ctx.io);
      const resource = await client.get(kind.plural, name);
      const events = kind.kind === 'Event' ? [] : await eventsOf(client, { ...resource, kind: kind.kind });
      const render = kind.kind === 'Cluster' ? renderClusterDescribe : kind.kind === 'Rollout' ? renderRolloutDescribe : renderDescribe;
      ctx.io.stdout.write(render(resource, events));
    });
}
