import { KIND_TABLE } from '@edgeplane/protocol/kind-table';
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
  /** A required option whose value goes into the request body as `{[key]: value}`. */
  option?: { flags: string; key: string; description: string };
}

/** Resource actions: `POST /api/v1/<plural>/<name>/<verb>`. Which kinds take which verb comes from KIND_TABLE. */
const ACTIONS: ActionSpec[] = [
  {
    verb: 'approve',
    done: 'approved',
    summary: 'approve a pending or rejected host, or the next batch of a rollout',
    description:
      'Approve an edge host that registered with a token without auto-approve, or one that was rejected, so its agent may receive work (a device key change is approved with approve-key); or approve the next batch of a rollout that waits for approval (phase AwaitingApproval).',
    examples: ['edgeplane approve host nuc-01', 'edgeplane approve rollout edge-1-34'],
  },
  {
    verb: 'reject',
    done: 'rejected',
    summary: 'reject a host so its agent may not connect',
    description:
      'Reject an edge host: its agent is refused when it connects, until the host is approved again. A host a cluster depends on (a node, a VM node, an appliance running VMs) is refused with HostInCluster: remove it from its cluster first.',
    examples: ['edgeplane reject host nuc-01'],
  },
  {
    verb: 'approve-key',
    done: 'bound to its new device key',
    summary: 'bind a host to its pending device key, named by fingerprint',
    description:
      'Approve a device key change (a device that registered with a known device UID and a new key, e.g. after a re-install): the host is bound to the new key and keeps its state; a connection still using the old key is closed. Name the key by the fingerprint you checked against the device (`edgeplane describe host NAME` shows status.pendingKeyFingerprint; 16 hex characters are enough): if another key registered since, nothing is bound (PendingKeyChanged).',
    examples: ['edgeplane approve-key host nuc-01 --fingerprint 3f9a1c2b7d4e8f01'],
    option: {
      flags: '--fingerprint <hex>',
      key: 'fingerprint',
      description: 'the pending key fingerprint (status.pendingKeyFingerprint), at least its first 16 characters',
    },
  },
  {
    verb: 'reject-key',
    done: 'key change refused',
    summary: "refuse a host's pending device key, keeping the host",
    description:
      'Refuse a device key change (a device that registered with a known device UID and a new key): the pending key is dropped and can never connect; the host keeps its current key, state and connection. To turn the host away altogether, use `reject`.',
    examples: ['edgeplane reject-key host nuc-01'],
  },
  {
    verb: 'revoke',
    done: 'revoked',
    summary: 'revoke a registration token',
    description:
      'Revoke a registration token: no further host can register with it. Hosts that already registered with it keep their own identity and stay connected.',
    examples: ['edgeplane revoke token shop-installers'],
  },
  {
    verb: 'pause',
    done: 'paused',
    summary: 'pause a rollout or a cluster upgrade',
    description:
      'Pause a rollout: clusters already upgrading finish; no further cluster starts until `resume`. Pause a cluster upgrade: the node in its maintenance window finishes; no further node starts until `resume`.',
    examples: ['edgeplane pause rollout edge-1-34', 'edgeplane pause cluster shop-1'],
  },
  {
    verb: 'resume',
    done: 'resumed',
    summary: 'resume a paused rollout or cluster upgrade',
    description: "Resume a paused rollout (it starts clusters again, inside their sites' maintenance windows) or a paused cluster upgrade.",
    examples: ['edgeplane resume rollout edge-1-34', 'edgeplane resume cluster shop-1'],
  },
  {
    verb: 'cancel',
    done: 'cancelled',
    summary: 'cancel a cluster upgrade',
    description:
      'Cancel a cluster upgrade: the node in its maintenance window finishes; nodes not started stay on their previous revision (a staged image is left unused). Change spec.profile.revision to plan a new upgrade.',
    examples: ['edgeplane cancel cluster shop-1'],
  },
  {
    verb: 'retry',
    done: 'retried',
    summary: 'retry a failed cluster upgrade, or the failed OS images of a host',
    description:
      'Retry a failed cluster upgrade: the node that failed (and fell back) is tried again, then the rest. To go back instead, set spec.profile.revision to the previous revision. Retry a host: the OS images whose trial boot fell back there (status.agent.managers.os.failedImages) are tried again, once, the next time the host is asked for them (its cluster or OS profile asks at once); a host with none answers NoFailedImage.',
    examples: ['edgeplane retry cluster shop-1', 'edgeplane retry host edge-49db26fd4cda'],
  },
  {
    verb: 'abort',
    done: 'abort requested',
    summary: 'abort a rollout',
    description:
      'Abort a rollout: no further cluster starts, clusters already upgrading finish (so each cluster ends on its old or its new revision, never in between), and the rollout ends Aborted.',
    examples: ['edgeplane abort rollout edge-1-34'],
  },
];

export function registerActions(program: Command, ctx: CommandContext): void {
  for (const action of ACTIONS) {
    const kinds = KIND_TABLE.filter((k) => k.verbs.includes(action.verb));
    const kindNames = kinds.map((k) => [k.singular, ...k.shortNames.slice(0, 1)].join('|')).join(', ');
    const cmd = program
      .command(action.verb)
      .summary(action.summary)
      .description(`${action.description}\n\nApplies to: ${kindNames}.`)
      .argument('<kind>', `kind of resource (${kindNames})`)
      .argument('<names...>', 'names of the resources');
    if (action.option) cmd.requiredOption(action.option.flags, action.option.description);
    withConnectionOptions(cmd)
      .addHelpText('after', examples(...action.examples))
      .action(async (kindName: string, names: string[], opts: ConnectionFlags & Record<string, string>) => {
        const kind = kindOrThrow(kindName);
        if (!kind.verbs.includes(action.verb)) {
          throw new CliError(`${kind.plural} cannot be ${action.done}; "${action.verb}" applies to: ${kinds.map((k) => k.plural).join(', ')}`);
        }
        const client = clientFor(opts, ctx.io);
        for (const name of names) {
          await client.action(kind.plural, name, action.verb, action.option ? { [action.option.key]: opts[action.option.key] } : {});
          ctx.io.stdout.write(`${kind.plural}/${name} ${action.done}\n`);
        }
      });
  }
}
