import { API_VERSION } from '@edgeplane/protocol';
import type { Command } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { type OutputFormat, renderResources } from '../output.js';
import { intArg, parseDuration, parseLabels } from '../parse.js';
import { type CommandContext, clientFor, examples, kindOrThrow, outputOption, withConnectionOptions } from './common.js';

interface CreateTokenOptions extends ConnectionFlags {
  autoApprove?: boolean;
  requireTpm?: boolean;
  site?: string;
  labels?: Record<string, string>;
  maxUses?: number;
  expiresIn?: number;
  description?: string;
  output: OutputFormat;
}

/** The RegistrationToken a `create token` invocation asks for. */
export function tokenManifest(name: string, opts: Omit<CreateTokenOptions, 'output'>, now: Date = new Date()) {
  const spec: Record<string, unknown> = { autoApprove: opts.autoApprove ?? false };
  if (opts.requireTpm) spec.requireTpm = true;
  if (opts.site) spec.site = opts.site;
  if (opts.labels) spec.labels = opts.labels;
  if (opts.maxUses !== undefined) spec.maxUses = opts.maxUses;
  if (opts.expiresIn !== undefined) spec.expiresAt = new Date(now.getTime() + opts.expiresIn).toISOString();
  if (opts.description) spec.description = opts.description;
  return { apiVersion: API_VERSION, kind: 'RegistrationToken', metadata: { name }, spec };
}

export function registerCreate(program: Command, ctx: CommandContext): void {
  const create = program
    .command('create')
    .summary('create a resource from flags')
    .description('Create a resource from command-line flags. To create from a manifest, use `edgeplane apply -f`.')
    .addHelpText('after', examples('edgeplane create token shop-installers --site shop-1 --expires-in 7d'));

  const token = create
    .command('token')
    .alias('registrationtoken')
    .summary('create a registration token for installing hosts')
    .description(
      'Create a registration token. Put the secret in a device installer (user-data) so hosts register ' +
        'themselves. The secret is printed once and cannot be shown again.',
    )
    .argument('<name>', 'name of the token')
    .option('--auto-approve', 'hosts registering with this token are approved without an operator')
    .option('--require-tpm', 'only devices whose identity key lives in a TPM 2.0 may register with the token')
    .option('--site <site>', 'site assigned to every host that registers with the token')
    .option('--labels <k=v,...>', 'labels copied onto every host that registers with the token', parseLabels)
    .option('--max-uses <n>', 'how many hosts may register with the token', intArg('--max-uses'))
    .option('--expires-in <duration>', 'lifetime of the token, e.g. 24h, 7d, 2w', parseDuration)
    .option('--description <text>', 'free-form description')
    .addOption(outputOption(['table', 'json', 'yaml']));
  withConnectionOptions(token)
    .addHelpText(
      'after',
      examples(
        'edgeplane create token shop-installers --site shop-1 --auto-approve --expires-in 7d',
        'edgeplane create token lab --labels env=lab,team=edge --max-uses 10 -o json',
      ),
    )
    .action(async (name: string, opts: CreateTokenOptions) => {
      const { io } = ctx;
      const kind = kindOrThrow('registrationtokens');
      const client = clientFor(opts, io);
      const created = await client.create(kind.plural, tokenManifest(name, opts));
      const secret = created.status?.token;
      if (opts.output === 'table') {
        io.stdout.write(`${kind.plural}/${created.metadata.name} created\n`);
        if (typeof secret === 'string') io.stdout.write(`Token: ${secret}\n`);
      } else {
        io.stdout.write(renderResources(opts.output, kind, [created], { single: true }));
      }
      if (typeof secret === 'string') {
        io.stderr.write('Warning: the token secret is shown only once; store it now (the server keeps only a hash).\n');
      } else {
        io.stderr.write('Warning: the server did not return the token secret (status.token).\n');
      }
    });
}
