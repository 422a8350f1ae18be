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
  fieldSelector?: string;
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
        'Events are listed oldest first (newest last), other kinds by name. ' +
        'Without --limit every page is fetched. With --limit N only the first N are shown and the ' +
        'continue token is printed; add --all to fetch every page, N at a time.',
    )
    .argument('<kind>', 'kind: plural, singular or short name (hosts, tokens, projects, ...)')
    .argument('[name]', 'show only the resource with this name')
    .addOption(outputOption())
    .option('-l, --selector <selector>', 'label selector, e.g. env=prod,tier!=lab')
    .option(
      '--field-selector <selector>',
      'field selector, e.g. spec.site=shop-1,status.state=ready (hosts: spec.site, status.state, status.connectivity, metadata.name; =, ==, !=)',
    )
    .option('--limit <n>', 'maximum number of resources per request', intArg('--limit'))
    .option('--all', 'with --limit, fetch every page instead of only the first')
    .option('--continue <token>', 'continue a previous limited listing from this token');
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'edgeplane get hosts',
        'edgeplane get hosts --field-selector spec.site=shop-1',
        'edgeplane get hosts --field-selector spec.site=shop-1,status.state=ready -l env=prod',
        'edgeplane get host nuc-01 -o yaml',
        'edgeplane get tokens --limit 20',
        'edgeplane get events --field-selector involvedObject.kind=Cluster,type=Warning',
      ),
    )
    .action(async (kindName: string, name: string | undefined, opts: GetOptions) => {
      const kind = kindOrThrow(kindName);
      const client = clientFor(opts, ctx.io);
      const { io } = ctx;
      if (name) {
        if (opts.selector || opts.fieldSelector || opts.limit || opts.continue)
          throw new CliError('--selector, --field-selector, --limit and --continue apply to lists, not to a single resource');
        const item = await client.get(kind.plural, name);
        io.stdout.write(renderResources(opts.output, kind, [item], { single: true }));
        return;
      }
      const filter = { labelSelector: opts.selector, fieldSelector: opts.fieldSelector, limit: opts.limit, continue: opts.continue };
      let items: Resource[];
      let continueToken: string | undefined;
      if (opts.limit && !opts.all) {
        const page = await client.list(kind.plural, filter);
        items = page.items;
        continueToken = page.metadata?.continue;
      } else {
        items = (await client.listAll(kind.plural, filter)).items;
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
