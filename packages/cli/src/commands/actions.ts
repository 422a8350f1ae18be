import { KINDS } from '@edgeplane/protocol';
import type { Command } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { type CommandContext, clientFor, examples, kindOrThrow, withConnectionOptions } from './common.js';

interface ActionSpec {
  verb: string;
  done: string;
  summary: string;
  description: string;
  examples: string[];
}

/** Resource actions: `POST /api/v1/<plural>/<name>/<verb>`. Which kinds take which verb comes from KINDS. */
const ACTIONS: ActionSpec[] = [
  {
    verb: 'approve',
    done: 'approved',
    summary: 'approve a host that is pending approval',
    description:
      'Approve an edge host that registered with a token without auto-approve (or whose device key changed), so its agent may connect and receive work.',
    examples: ['edgeplane approve host nuc-01'],
  },
  {
    verb: 'reject',
    done: 'rejected',
    summary: 'reject a host so its agent may not connect',
    description: 'Reject an edge host: its agent is refused when it connects.',
    examples: ['edgeplane reject host nuc-01'],
  },
  {
    verb: 'revoke',
    done: 'revoked',
    summary: 'revoke a registration token',
    description:
      'Revoke a registration token: no further host can register with it. Hosts that already registered with it keep their own identity and stay connected.',
    examples: ['edgeplane revoke token shop-installers'],
  },
];

export function registerActions(program: Command, ctx: CommandContext): void {
  for (const action of ACTIONS) {
    const kinds = KINDS.filter((k) => k.verbs.includes(action.verb));
    const kindNames = kinds.map((k) => [k.singular, ...k.shortNames.slice(0, 1)].join('|')).join(', ');
    const cmd = program
      .command(action.verb)
      .summary(action.summary)
      .description(`${action.description}\n\nApplies to: ${kindNames}.`)
      .argument('<kind>', `kind of resource (${kindNames})`)
      .argument('<names...>', 'names of the resources');
    withConnectionOptions(cmd)
      .addHelpText('after', examples(...action.examples))
      .action(async (kindName: string, names: string[], opts: ConnectionFlags) => {
        const kind = kindOrThrow(kindName);
        if (!kind.verbs.includes(action.verb)) {
          throw new CliError(`${kind.plural} cannot be ${action.done}; "${action.verb}" applies to: ${kinds.map((k) => k.plural).join(', ')}`);
        }
        const client = clientFor(opts, ctx.io);
        for (const name of names) {
          await client.action(kind.plural, name, action.verb);
          ctx.io.stdout.write(`${kind.plural}/${name} ${action.done}\n`);
        }
      });
  }
}
