import { readFileSync, writeFileSync } from 'node:fs';
import { serverTrust } from '@edgeplane/agent/tls';
import { type Command, Option } from 'commander';
import { ApiError, NetworkError } from '../api-client.js';
import { resolveTarget } from '../config.js';
import { CliError } from '../errors.js';
import { parseLabels } from '../parse.js';
import { type CommandContext, examples } from './common.js';
import { registerInstallOs } from './installer-os.js';

interface InstallerOptions {
  token: string;
  tokenSecret?: string;
  rotate?: boolean;
  site?: string;
  labels?: Record<string, string>;
  network?: 'dhcp' | 'static';
  interface?: string;
  address?: string;
  gateway?: string;
  dns?: string[];
  ntp?: string[];
  caFile?: string;
  hostname?: string;
  agentServer?: string;
  output?: string;
  server?: string;
  apiToken?: string;
  context?: string;
}

const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** The request body of POST /api/v1/registrationtokens/<name>/installer from the flags. */
export function installerBody(opts: Omit<InstallerOptions, 'token'>): Record<string, unknown> {
  if (opts.network === 'static' && (!opts.address || !opts.gateway))
    throw new CliError('--network static needs --address CIDR and --gateway IP (and usually --dns)');
  if (opts.network !== 'static' && (opts.address || opts.gateway || opts.dns || opts.interface))
    throw new CliError('--address, --gateway, --dns and --interface need --network static');
  let caPem: string | undefined;
  if (opts.caFile) {
    try {
      caPem = readFileSync(opts.caFile, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read --ca-file ${opts.caFile}: ${(err as Error).message}`);
    }
  }
  return {
    ...(opts.tokenSecret ? { tokenSecret: opts.tokenSecret } : {}),
    ...(opts.rotate ? { rotate: true } : {}),
    ...(opts.agentServer ? { server: opts.agentServer } : {}),
    ...(opts.site ? { site: opts.site } : {}),
    ...(opts.labels ? { labels: opts.labels } : {}),
    ...(opts.network === 'static'
      ? {
          network: {
            mode: 'static',
            address: opts.address,
            gateway: opts.gateway,
            dns: opts.dns ?? [],
            ...(opts.interface ? { interface: opts.interface } : {}),
          },
        }
      : opts.network === 'dhcp'
        ? { network: { mode: 'dhcp' } }
        : {}),
    ...(opts.ntp ? { ntp: opts.ntp } : {}),
    ...(caPem ? { caPem } : {}),
    ...(opts.hostname ? { hostname: opts.hostname } : {}),
  };
}

async function fetchInstaller(opts: InstallerOptions, format: 'user-data' | 'iso', env: Record<string, string | undefined>) {
  // The CA the device must trust is the server's CA: the CLI trusts it for this call too.
  const target = resolveTarget({ server: opts.server, token: opts.apiToken, context: opts.context, caFile: opts.caFile }, env);
  const base = target.server.replace(/\/+$/, '');
  const url = `${base}/api/v1/registrationtokens/${encodeURIComponent(opts.token)}/installer?format=${format}`;
  let res: Response;
  try {
    res = await serverTrust(target.caFile).fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) },
      body: JSON.stringify(installerBody(opts)),
    });
  } catch (err) {
    throw new NetworkError(base, err);
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  if (!res.ok) {
    let e: ApiError;
    try {
      const { error } = JSON.parse(bytes.toString('utf8'));
      e = new ApiError(res.status, error.code, error.message, error.details);
    } catch {
      e = new ApiError(res.status, `HTTP${res.status}`, `${res.status} ${res.statusText}`);
    }
    throw e;
  }
  return { bytes, rotated: res.headers.get('x-edgeplane-token-rotated') === 'true' };
}

function addInstallerOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--token <name>', 'name of the registration token the devices register with')
    .option('--token-secret <secret>', 'the token secret printed by `edgeplane create token` (the server keeps only a hash)')
    .option('--rotate', 'instead of --token-secret: give the token a fresh secret (installers made with the old one stop registering new devices)')
    .option('--site <site>', "site of the devices (default: the token's site)")
    .option('--labels <k=v,...>', 'labels the devices report', parseLabels)
    .addOption(new Option('--network <mode>', 'network setup of the device').choices(['dhcp', 'static']))
    .option('--interface <name>', 'interface for --network static (default: the first ethernet)')
    .option('--address <cidr>', 'static address with prefix, e.g. 10.0.0.5/24')
    .option('--gateway <ip>', 'default gateway for --network static')
    .option('--dns <ip,...>', 'DNS servers for --network static', list)
    .option('--ntp <host,...>', 'NTP servers', list)
    .option('--ca-file <pem>', 'CA certificate the device must trust for the server (private PKI)')
    .option('--hostname <name>', 'local host name of the device (meta-data local-hostname)')
    .option('--agent-server <url>', 'control plane URL written into the user-data (default: the --server URL)')
    .option('--server <url>', 'API server URL (overrides the context; env EDGEPLANE_SERVER)')
    .option('--api-token <token>', 'API token (overrides the context; env EDGEPLANE_TOKEN)')
    .option('--context <name>', 'use this context from the config file instead of the current one');
}

function requireSecretChoice(opts: InstallerOptions): void {
  if (!opts.tokenSecret && !opts.rotate)
    throw new CliError('the token secret is shown only once and the server keeps a hash: pass --token-secret SECRET, or --rotate for a fresh secret');
  if (opts.tokenSecret && opts.rotate) throw new CliError('give --token-secret or --rotate, not both');
}

export function registerInstaller(program: Command, ctx: CommandContext): void {
  const installer = program
    .command('installer')
    .summary('make installer user-data and NoCloud seed ISOs for a registration token')
    .description(
      'Make the artifacts a device installer needs to register itself: cloud-config user-data with the ' +
        'agent config under the `edgeplane:` key (plus ntp, ca_certs and a network-config for static ' +
        'addresses), or a complete cloud-init NoCloud seed ISO (volume id cidata). See docs/registration-installer.md.',
    )
    .addHelpText('after', examples('edgeplane installer user-data --token shop-installers --token-secret eprt_... > user-data'));

  addInstallerOptions(
    installer
      .command('user-data')
      .summary('print cloud-config user-data for a token')
      .description('Print the cloud-config user-data for a registration token. The agent accepts the file as it is: `edgeplane agent --config user-data`.'),
  )
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .addHelpText(
      'after',
      examples(
        'edgeplane installer user-data --token shops --token-secret "$SECRET" --site shop-1 > user-data',
        'edgeplane installer user-data --token shops --rotate --network static --address 10.0.0.5/24 --gateway 10.0.0.1 --dns 10.0.0.1 --ntp pool.ntp.org',
      ),
    )
    .action(async (opts: InstallerOptions) => {
      requireSecretChoice(opts);
      const { bytes, rotated } = await fetchInstaller(opts, 'user-data', ctx.io.env);
      if (opts.output) {
        writeFileSync(opts.output, bytes, { mode: 0o600 });
        ctx.io.stderr.write(`Wrote ${opts.output}.\n`);
      } else ctx.io.stdout.write(bytes.toString('utf8'));
      if (rotated) ctx.io.stderr.write(`Rotated the secret of token ${opts.token}: earlier installers no longer register new devices.\n`);
    });

  addInstallerOptions(
    installer
      .command('seed-iso')
      .summary('write a cloud-init NoCloud seed ISO for a token')
      .description(
        'Write a cloud-init NoCloud seed ISO (volume id cidata; user-data, meta-data and, for a static address, network-config). ' +
          'Attach it to the device (USB, virtual CD) next to the OS installer; the agent reads it with `edgeplane agent --seed /dev/sr0`.',
      ),
  )
    .requiredOption('-o, --output <file>', 'where to write the ISO')
    .addHelpText('after', examples('edgeplane installer seed-iso --token shops --token-secret "$SECRET" --site shop-1 -o seed.iso'))
    .action(async (opts: InstallerOptions) => {
      requireSecretChoice(opts);
      const { bytes, rotated } = await fetchInstaller(opts, 'iso', ctx.io.env);
      writeFileSync(opts.output!, bytes, { mode: 0o600 });
      ctx.io.stderr.write(`Wrote ${opts.output} (${bytes.length} bytes, NoCloud seed, volume id cidata).\n`);
      if (rotated) ctx.io.stderr.write(`Rotated the secret of token ${opts.token}: earlier installers no longer register new devices.\n`);
    });

  registerInstallOs(installer, ctx);
}
