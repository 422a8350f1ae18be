import type { Command } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { type CommandContext, clientFor, examples, kindOrThrow, knownKindsText, withConnectionOptions } from './common.js';

export function registerDelete(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('delete')
    .summary('delete resources by name')
    .description(`Delete one or more resources of a kind by name.\n\nKinds: ${knownKindsText()}.`)
    .argument('<kind>', 'kind: plural, singular or short name')
    .argument('<names...>', 'names of the resources to delete');
  withConnectionOptions(cmd)
    .addHelpText('after', examples('edgeplane delete token shop-installers', 'edgeplane delete host nuc-01 nuc-02'))
    .action(async (kindName: string, names: string[], opts: ConnectionFlags) => {
      const kind = kindOrThrow(kindName);
      const client = clientFor(opts, ctx.io);
      for (const name of names) {
        await client.delete(kind.plural, name);
        ctx.io.stdout.write(`${kind.plural}/${name} deleted\n`);
      }
    });
}
