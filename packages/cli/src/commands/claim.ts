import { type Command, Option } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { parseLabels } from '../parse.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';

interface ClaimOptions extends ConnectionFlags {
  project?: string;
  site?: string;
  labels?: Record<string, string>;
  output: 'table' | 'json';
}

interface ClaimAnswer {
  code: string;
  deviceUid: string;
  hostName: string;
  project: string;
  site?: string;
  labels: Record<string, string>;
  inventory?: { hostname?: string; dmi?: { vendor?: string; productName?: string }; cpu?: { cores?: number }; memoryBytes?: number };
}

export function registerClaim(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('claim')
    .summary('claim the pairing code a device shows')
    .description(
      'Claim the pairing code an unregistered device shows on its screen or local page (8 characters, ' +
        'no 0/O/1/I; case and dashes do not matter). The device then registers on its own, approved, in ' +
        'the given project with the given site and labels. Codes expire after 15 minutes and work once.',
    )
    .argument('<code>', 'the pairing code shown by the device')
    .option('--project <project>', 'project the host goes into (default: default)')
    .option('--site <site>', 'site of the host')
    .option('--labels <k=v,...>', 'labels of the host', parseLabels)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'));
  withConnectionOptions(cmd)
    .addHelpText('after', examples('edgeplane claim 7KQ2-M9XD', 'edgeplane claim 7KQ2M9XD --project stores --site shop-12 --labels tier=edge,row=3'))
    .action(async (code: string, opts: ClaimOptions) => {
      const client = clientFor(opts, ctx.io);
      const body = {
        ...(opts.project ? { project: opts.project } : {}),
        ...(opts.site ? { site: opts.site } : {}),
        ...(opts.labels ? { labels: opts.labels } : {}),
      };
      const res = await client.request<ClaimAnswer>('POST', `pairings/${encodeURIComponent(code)}/claim`, { body });
      if (opts.output === 'json') {
        ctx.io.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
        return;
      }
      const inv = res.inventory;
      const hw = [inv?.dmi?.vendor, inv?.dmi?.productName].filter(Boolean).join(' ');
      ctx.io.stdout.write(
        `Claimed ${res.code}: device ${res.deviceUid}${inv?.hostname ? ` (${inv.hostname}${hw ? `, ${hw}` : ''})` : ''}\n` +
          `It registers as host ${res.hostName} in project ${res.project}${res.site ? `, site ${res.site}` : ''}` +
          `${
            Object.keys(res.labels).length
              ? `, labels ${Object.entries(res.labels)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(',')}`
              : ''
          }.\n` +
          `Watch it come online: edgeplane get hosts ${res.hostName}\n`,
      );
    });
}
