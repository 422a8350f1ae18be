import { PROTOCOL_VERSION } from '@edgeplane/protocol/protocol-version';
import { type Command, Option } from 'commander';
import { type ConnectionFlags, configPath, loadConfig } from '../config.js';
import { toJson, toYaml } from '../output.js';
import { cliVersion } from '../program.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';

interface VersionOptions extends ConnectionFlags {
  client?: boolean;
  output: 'text' | 'json' | 'yaml';
}

/** GET /api/v1/version. */
interface ServerVersion {
  serverVersion: string;
  protocolVersion: number;
  apiVersion: string;
}

export function registerVersion(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('version')
    .summary('print the client version and, when logged in, the server version')
    .description(
      'Print the version of this CLI and of the protocol it speaks, and, when a server is configured ' +
        '(a context from `edgeplane login`, --server or EDGEPLANE_SERVER), the server version, its ' +
        'protocol and its API version. The server refuses a CLI or agent of another protocol major.',
    )
    .option('--client', 'print the client version only; do not contact the server')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json', 'yaml']).default('text'));
  withConnectionOptions(cmd)
    .addHelpText('after', examples('edgeplane version', 'edgeplane version --client', 'edgeplane version -o json'))
    .action(async (opts: VersionOptions) => {
      const client = { clientVersion: cliVersion(), protocolVersion: PROTOCOL_VERSION };
      let server: ServerVersion | undefined;
      if (!opts.client && serverConfigured(opts, ctx.io.env)) {
        server = await clientFor(opts, ctx.io).request<ServerVersion>('GET', 'version');
      }
      const out = ctx.io.stdout;
      if (opts.output === 'json') return void out.write(toJson({ client, ...(server ? { server } : {}) }));
      if (opts.output === 'yaml') return void out.write(toYaml({ client, ...(server ? { server } : {}) }));
      out.write(`Client Version: ${client.clientVersion}\nClient Protocol: ${client.protocolVersion}\n`);
      if (!server) return;
      out.write(`Server Version: ${server.serverVersion}\nServer Protocol: ${server.protocolVersion}\nAPI Version: ${server.apiVersion}\n`);
      if (server.protocolVersion !== PROTOCOL_VERSION) {
        ctx.io.stderr.write(
          `Warning: the server speaks protocol ${server.protocolVersion}, this CLI ${PROTOCOL_VERSION}: install the CLI of the server's release\n`,
        );
      }
    });
}

/** Whether a server to ask is configured; without one `version` prints the client's only (like a fresh install). */
function serverConfigured(flags: ConnectionFlags, env: Record<string, string | undefined>): boolean {
  if (flags.server || flags.context || env.EDGEPLANE_SERVER) return true;
  const config = loadConfig(configPath(env));
  return config.contexts.some((c) => c.name === config.currentContext);
}
