import type { Command } from 'commander';
import type { Resource } from '../api-client.js';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { type OutputFormat, renderResources } from '../output.js';
import { intArg } from '../parse.js';
import { type CommandContext, clientFor, examples, kindOrThrow, knownKindsText, outputOption, withConnectionOptions } from './common.js';

interface GetOptions extends ConnectionFlags {
  output: OutputFormat;
  selector?: string;
  limit?: number;
  all?: boolean;
  continue?: string;
}

export function registerGet(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('get')
    .summary('list resources of a kind, or show one')
    .description(
      `List resources of a kind, or show one by name.\n\nKinds: ${knownKindsText()}.\n\n` +
        'Without --limit every page is fetched. With --limit N only the first N are shown and the ' +
        'continue token is printed; add --all to fetch every page, N at a time.',
    )
    .argument('<kind>', 'kind: plural, singular or short name (hosts, tokens, projects, ...)')
    .argument('[name]', 'show only the resource with this name')
    .addOption(outputOption())
    .option('-l, --selector <selector>', 'label selector, e.g. site=shop-1,env!=lab')
    .option('--limit <n>', 'maximum number of resources per request', intArg('--limit'))
    .option('--all', 'with --limit, fetch every page instead of only the first')
    .option('--continue <token>', 'continue a previous limited listing from this token');
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'edgeplane get hosts',
        'edgeplane get hosts -l site=shop-1',
        'edgeplane get host nuc-01 -o yaml',
        'edgeplane get tokens --limit 20',
        'edgeplane get events -o json',
      ),
    )
    .action(async (kindName: string, name: string | undefined, opts: GetOptions) => {
      const kind = kindOrThrow(kindName);
      const client = clientFor(opts, ctx.io);
      const { io } = ctx;
      if (name) {
        if (opts.selector || opts.limit || opts.continue) throw new CliError('--selector, --limit and --continue apply to lists, not to a single resource');
        const item = await client.get(kind.plural, name);
        io.stdout.write(renderResources(opts.output, kind, [item], { single: true }));
        return;
      }
      let items: Resource[];
      let continueToken: string | undefined;
      if (opts.limit && !opts.all) {
        const page = await client.list(kind.plural, { labelSelector: opts.selector, limit: opts.limit, continue: opts.continue });
        items = page.items;
        continueToken = page.metadata?.continue;
      } else {
        items = (await client.listAll(kind.plural, { labelSelector: opts.selector, limit: opts.limit, continue: opts.continue })).items;
      }
      if (items.length === 0 && (opts.output === 'table' || opts.output === 'wide' || opts.output === 'name')) {
        io.stderr.write(`No ${kind.plural} found.\n`);
        return;
      }
      io.stdout.write(renderResources(opts.output, kind, items, { continueToken }));
      if (continueToken && (opts.output === 'table' || opts.output === 'wide' || opts.output === 'name')) {
        io.stderr.write(`More ${kind.plural} available: add --all to fetch them all, or --continue ${continueToken} for the next page.\n`);
      }
    });
}
