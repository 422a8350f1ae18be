import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ApiClient, ApiError } from '../api-client.js';
import { configPath, contextNameFor, loadConfig, saveConfig, upsertContext } from '../config.js';
import { CliError } from '../errors.js';
import { renderTable } from '../output.js';
import { type CommandContext, examples } from './common.js';

interface LoginOptions {
  server?: string;
  token?: string;
  context?: string;
  caFile?: string;
}

export function registerLogin(program: Command, ctx: CommandContext): void {
  program
    .command('login')
    .summary('check an API token and save it as a context')
    .description(
      'Check that the server accepts an API token, then save server and token as a context in the ' +
        'CLI config file (EDGEPLANE_CONFIG, else $XDG_CONFIG_HOME/edgeplane/config.yaml, else ' +
        '~/.config/edgeplane/config.yaml; mode 0600) and make it the current context.',
    )
    .option('--server <url>', 'API server URL (env EDGEPLANE_SERVER)')
    .option('--token <token>', 'API token, e.g. the admin token printed by `edgeplane server` (env EDGEPLANE_TOKEN)')
    .option('--context <name>', 'name of the context to save (default: host-port of the server)')
    .option('--ca-file <file>', 'PEM file of CA certificates to trust for an https server, besides the system store; saved in the context')
    .addHelpText(
      'after',
      examples(
        'edgeplane login --server http://localhost:8080 --token "$(cat .edgeplane/admin-token)"',
        'edgeplane login --server https://edge.example.com --token ept_... --context prod',
      ),
    )
    .action(async (opts: LoginOptions) => {
      const { io } = ctx;
      const server = opts.server ?? io.env.EDGEPLANE_SERVER;
      const token = opts.token ?? io.env.EDGEPLANE_TOKEN;
      if (!server) throw new CliError('--server is required (or set EDGEPLANE_SERVER)');
      if (!token) throw new CliError('--token is required (or set EDGEPLANE_TOKEN)');
      try {
        new URL(server);
      } catch {
        throw new CliError(`--server "${server}" is not a URL; use e.g. http://localhost:8080`);
      }
      const caFile = opts.caFile ? resolve(opts.caFile) : io.env.EDGEPLANE_CA_FILE || undefined;
      const client = new ApiClient({ server, token, caFile });
      try {
        await client.list('projects', { limit: 1 });
      } catch (err) {
        // Forbidden still proves the token is genuine; the role just may not list projects.
        if (err instanceof ApiError && err.status === 403) {
          io.stderr.write('Note: the token is valid but may not list projects.\n');
        } else if (err instanceof ApiError && err.status === 401) {
          throw new ApiError(err.status, err.code, `the server at ${client.server} does not accept this token: ${err.message}`, err.details);
        } else {
          throw err;
        }
      }
      const name = opts.context ?? contextNameFor(client.server);
      const path = configPath(io.env);
      const config = upsertContext(loadConfig(path), { name, server: client.server, token, ...(caFile ? { caFile } : {}) });
      saveConfig(path, { ...config, currentContext: name });
      io.stdout.write(`Logged in to ${client.server}. Context "${name}" saved to ${path} and set as current.\n`);
    });

  const config = program
    .command('config')
    .summary('show and switch the contexts of the CLI config file')
    .description('Show and switch the contexts (server + token) saved by `edgeplane login`.')
    .addHelpText('after', examples('edgeplane config get-contexts', 'edgeplane config use-context prod', 'edgeplane config current-context'));

  config
    .command('get-contexts')
    .description('List the saved contexts; * marks the current one.')
    .addHelpText('after', examples('edgeplane config get-contexts'))
    .action(() => {
      const { io } = ctx;
      const cfg = loadConfig(configPath(io.env));
      if (cfg.contexts.length === 0) {
        io.stderr.write('No contexts; run `edgeplane login --server URL --token TOKEN`.\n');
        return;
      }
      const rows = cfg.contexts.map((c) => [c.name === cfg.currentContext ? '*' : '', c.name, c.server]);
      io.stdout.write(renderTable(['CURRENT', 'NAME', 'SERVER'], rows));
    });

  config
    .command('use-context')
    .description('Make a saved context the current one.')
    .argument('<name>', 'context name')
    .addHelpText('after', examples('edgeplane config use-context prod'))
    .action((name: string) => {
      const { io } = ctx;
      const path = configPath(io.env);
      const cfg = loadConfig(path);
      if (!cfg.contexts.some((c) => c.name === name)) {
        throw new CliError(`context "${name}" not found in ${path} (known: ${cfg.contexts.map((c) => c.name).join(', ') || 'none'})`);
      }
      saveConfig(path, { ...cfg, currentContext: name });
      io.stdout.write(`Switched to context "${name}".\n`);
    });

  config
    .command('current-context')
    .description('Print the name of the current context.')
    .addHelpText('after', examples('edgeplane config current-context'))
    .action(() => {
      const cfg = loadConfig(configPath(ctx.io.env));
      if (!cfg.currentContext) throw new CliError('no current context; run `edgeplane login`');
      ctx.io.stdout.write(`${cfg.currentContext}\n`);
    });
}
