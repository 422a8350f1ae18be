import { createHash } from 'node:crypto';
import { type AuditEntry, AuditList, verifyAuditChain } from '@edgeplane/protocol';
import { type Command, Option } from 'commander';
import type { ApiClient } from '../api-client.js';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { renderTable, toJson, toYaml } from '../output.js';
import { intArg } from '../parse.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';

const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

async function fetchAll(client: ApiClient, query: Record<string, string | number | undefined> = {}): Promise<AuditEntry[]> {
  const items: AuditEntry[] = [];
  let cont: string | undefined;
  do {
    const page = AuditList.parse(await client.request('GET', 'audit', { query: { ...query, limit: 1000, continue: cont } }));
    items.push(...page.items);
    cont = page.metadata.continue;
  } while (cont);
  return items;
}

export function registerAudit(program: Command, ctx: CommandContext): void {
  const group = program
    .command('audit')
    .summary('read and verify the audit log')
    .description(
      'The audit log records remote sessions (who, host, reason, start, end, bytes) and security-relevant ' +
        'changes (tokens created and revoked, hosts approved and rejected). It is append-only and each entry ' +
        'carries the hash of the one before, so an edited, removed or reordered entry is detected by ' +
        '`edgeplane audit verify`. Readable by admins and operators.',
    )
    .addHelpText('after', examples('edgeplane audit list', 'edgeplane audit verify'));

  withConnectionOptions(
    group
      .command('list')
      .summary('list audit entries, oldest first')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table'))
      .option('--actor <user>', 'only entries by this user')
      .option('--action <action>', 'only this action, e.g. session.start')
      .option('--target <target>', 'only this target, e.g. edgehosts/nuc-01')
      .option('--limit <n>', 'show at most the last N entries', intArg('--limit')),
  )
    .addHelpText(
      'after',
      examples('edgeplane audit list', 'edgeplane audit list --action session.start -o json', 'edgeplane audit list --target edgehosts/nuc-01'),
    )
    .action(async (flags: ConnectionFlags & { output: string; actor?: string; action?: string; target?: string; limit?: number }) => {
      let items = await fetchAll(clientFor(flags, ctx.io), { actor: flags.actor, action: flags.action, target: flags.target });
      if (flags.limit) items = items.slice(-flags.limit);
      if (flags.output === 'json') ctx.io.stdout.write(toJson(items));
      else if (flags.output === 'yaml') ctx.io.stdout.write(toYaml(items));
      else
        ctx.io.stdout.write(
          renderTable(
            ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'REASON'],
            items.map((e) => [String(e.seq), e.time, e.actor, e.action, e.target, e.reason ?? '']),
          ),
        );
    });

  withConnectionOptions(group.command('verify').summary('recompute the hash chain; exit 1 and name the first bad entry if broken'))
    .addHelpText('after', examples('edgeplane audit verify'))
    .action(async (flags: ConnectionFlags) => {
      const items = await fetchAll(clientFor(flags, ctx.io));
      const r = verifyAuditChain(sha256Hex, items);
      if (!r.ok) {
        const bad = items.find((e) => e.seq === r.firstBadSeq);
        throw new CliError(
          `audit chain is BROKEN at entry ${r.firstBadSeq}${bad ? ` (${bad.time} ${bad.actor} ${bad.action} ${bad.target})` : ''}: ${r.problem}`,
        );
      }
      ctx.io.stdout.write(`audit chain OK: ${r.entries} entries${r.lastHash ? `, last hash ${r.lastHash}` : ''}\n`);
    });
}
