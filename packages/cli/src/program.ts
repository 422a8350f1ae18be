import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { CommandContext } from './commands/common.js';
import { examples } from './commands/help-text.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The client's version (the CLI package's). */
export function cliVersion(): string {
  return VERSION;
}

type Register = (program: Command, ctx: CommandContext) => void;

/**
 * Top-level commands, by the module that registers them, in `--help` order. A run loads only the
 * module of the command it invokes (`edgeplane get ...` never parses the server, agent or image
 * builder code, and `--version` loads no command at all); help for the whole program, and a word
 * that names no command, load them all. `names` must list every top-level command the module
 * registers (program.test.ts checks it); a name missing here still works, by loading every module.
 */
export const COMMAND_MODULES: readonly { names: readonly string[]; load: () => Promise<Register[]> }[] = [
  { names: ['server'], load: async () => [(await import('./commands/server.js')).registerServer] },
  { names: ['agent'], load: async () => [(await import('./commands/agent.js')).registerAgent] },
  { names: ['sim'], load: async () => [(await import('./commands/sim.js')).registerSim] },
  { names: ['login', 'config'], load: async () => [(await import('./commands/login.js')).registerLogin] },
  { names: ['version'], load: async () => [(await import('./commands/version.js')).registerVersion] },
  { names: ['get'], load: async () => [(await import('./commands/get.js')).registerGet] },
  { names: ['describe'], load: async () => [(await import('./commands/describe.js')).registerDescribe] },
  { names: ['apply'], load: async () => [(await import('./commands/apply.js')).registerApply] },
  { names: ['delete'], load: async () => [(await import('./commands/delete.js')).registerDelete] },
  { names: ['create'], load: async () => [(await import('./commands/create.js')).registerCreate] },
  {
    names: ['approve', 'reject', 'approve-key', 'reject-key', 'revoke', 'pause', 'resume', 'cancel', 'retry', 'abort'],
    load: async () => [(await import('./commands/actions.js')).registerActions],
  },
  {
    names: ['plan', 'reset'],
    load: async () => {
      const m = await import('./commands/plan.js');
      return [m.registerPlan, m.registerReset];
    },
  },
  { names: ['wait'], load: async () => [(await import('./commands/wait.js')).registerWait] },
  { names: ['kubeconfig'], load: async () => [(await import('./commands/kubeconfig.js')).registerKubeconfig] },
  { names: ['shell'], load: async () => [(await import('./commands/shell.js')).registerShell] },
  { names: ['exec'], load: async () => [(await import('./commands/exec.js')).registerExec] },
  { names: ['logs'], load: async () => [(await import('./commands/logs.js')).registerLogs] },
  { names: ['support-bundle'], load: async () => [(await import('./commands/support-bundle.js')).registerSupportBundle] },
  { names: ['session'], load: async () => [(await import('./commands/session.js')).registerSession] },
  { names: ['audit'], load: async () => [(await import('./commands/audit.js')).registerAudit] },
  { names: ['installer'], load: async () => [(await import('./commands/installer.js')).registerInstaller] },
  { names: ['claim'], load: async () => [(await import('./commands/claim.js')).registerClaim] },
  { names: ['hosts'], load: async () => [(await import('./commands/hosts-import.js')).registerHosts] },
  { names: ['vm'], load: async () => [(await import('./commands/vm.js')).registerVm] },
  { names: ['image'], load: async () => [(await import('./commands/image.js')).registerImage] },
  { names: ['completion', '__complete'], load: async () => [(await import('./commands/completion.js')).registerCompletion] },
];

/** Root options that take no command: `edgeplane --version` needs no command module. */
const ROOT_ONLY = new Set(['-v', '--version']);

/**
 * Which command modules a run with these arguments (after node and the script) needs: the
 * invoked command's, none for `--version`, all for root help or an unknown word (commander
 * then lists the commands or suggests the nearest one).
 */
export function modulesFor(args: readonly string[]): (typeof COMMAND_MODULES)[number][] {
  const first = args.find((a) => !a.startsWith('-'));
  if (first === undefined) return args.some((a) => ROOT_ONLY.has(a)) && !args.some((a) => a === '-h' || a === '--help') ? [] : [...COMMAND_MODULES];
  // `edgeplane help get` is `edgeplane get --help`.
  const word = first === 'help' ? args[args.indexOf(first) + 1] : first;
  const owner = word === undefined ? undefined : COMMAND_MODULES.find((m) => m.names.includes(word));
  return owner ? [owner] : [...COMMAND_MODULES];
}

/**
 * Builds the command tree: the root program plus the commands `args` needs (all of them when
 * args is omitted). A fresh tree per run: commander keeps parsed option values on the Command
 * objects. Output goes to ctx.io, and commander throws instead of exiting the process.
 */
export async function buildProgram(ctx: CommandContext, args?: readonly string[]): Promise<Command> {
  const modules = args ? modulesFor(args) : COMMAND_MODULES;
  const registers = (await Promise.all(modules.map((m) => m.load()))).flat();
  const program = new Command('edgeplane');
  // Set before adding subcommands: they copy these settings from their parent.
  program
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .showHelpAfterError('(add --help for usage)')
    .showSuggestionAfterError();
  program
    .description(
      'Edgeplane: run Kubernetes at the edge from one control plane.\n\n' +
        'Run the control plane (server), an edge agent (agent) or a simulated fleet (sim), and manage ' +
        'resources like kubectl: get, describe, apply, delete, approve, create token.',
    )
    .version(VERSION, '-v, --version', 'print the version')
    .helpCommand(true)
    .addHelpText(
      'after',
      `\n${examples(
        'edgeplane server',
        'edgeplane login --server http://localhost:8080 --token "$(cat .edgeplane/admin-token)"',
        'edgeplane create token shop-installers --site shop-1 --expires-in 7d',
        'edgeplane get hosts',
        'edgeplane approve host nuc-01',
        'source <(edgeplane completion bash)',
      ).trimStart()}\n` +
        'Config: contexts are saved by `edgeplane login` to EDGEPLANE_CONFIG, else\n' +
        '$XDG_CONFIG_HOME/edgeplane/config.yaml, else ~/.config/edgeplane/config.yaml.\n',
    );
  for (const register of registers) register(program, ctx);
  // Root options (-v/--version) only before the command, so that `image build --version 1.2.3` is
  // the command's own option. Set after the commands are added: they would inherit it.
  program.enablePositionalOptions();
  return program;
}
