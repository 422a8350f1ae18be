import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerActions } from './commands/actions.js';
import { registerAgent } from './commands/agent.js';
import { registerApply } from './commands/apply.js';
import { registerAudit } from './commands/audit.js';
import { registerClaim } from './commands/claim.js';
import { type CommandContext, examples } from './commands/common.js';
import { registerCreate } from './commands/create.js';
import { registerDelete } from './commands/delete.js';
import { registerDescribe } from './commands/describe.js';
import { registerExec } from './commands/exec.js';
import { registerGet } from './commands/get.js';
import { registerHosts } from './commands/hosts-import.js';
import { registerImage } from './commands/image.js';
import { registerInstaller } from './commands/installer.js';
import { registerKubeconfig } from './commands/kubeconfig.js';
import { registerLogin } from './commands/login.js';
import { registerLogs } from './commands/logs.js';
import { registerPlan, registerReset } from './commands/plan.js';
import { registerServer } from './commands/server.js';
import { registerSession } from './commands/session.js';
import { registerShell } from './commands/shell.js';
import { registerSim } from './commands/sim.js';
import { registerSupportBundle } from './commands/support-bundle.js';
import { registerVm } from './commands/vm.js';
import { registerWait } from './commands/wait.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * Builds the command tree. A fresh tree per run: commander keeps parsed option values on the
 * Command objects. Output goes to ctx.io, and commander throws instead of exiting the process.
 */
export function buildProgram(ctx: CommandContext): Command {
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
      ).trimStart()}\n` +
        'Config: contexts are saved by `edgeplane login` to EDGEPLANE_CONFIG, else\n' +
        '$XDG_CONFIG_HOME/edgeplane/config.yaml, else ~/.config/edgeplane/config.yaml.\n',
    );

  registerServer(program, ctx);
  registerAgent(program, ctx);
  registerSim(program, ctx);
  registerLogin(program, ctx);
  registerGet(program, ctx);
  registerDescribe(program, ctx);
  registerApply(program, ctx);
  registerDelete(program, ctx);
  registerCreate(program, ctx);
  registerActions(program, ctx);
  registerPlan(program, ctx);
  registerReset(program, ctx);
  registerWait(program, ctx);
  registerKubeconfig(program, ctx);
  registerShell(program, ctx);
  registerExec(program, ctx);
  registerLogs(program, ctx);
  registerSupportBundle(program, ctx);
  registerSession(program, ctx);
  registerAudit(program, ctx);
  registerInstaller(program, ctx);
  registerClaim(program, ctx);
  registerHosts(program, ctx);
  registerVm(program, ctx);
  registerImage(program, ctx);
  // Root options (-v/--version) only before the command, so that `image build --version 1.2.3` is
  // the command's own option. Set after the commands are added: they would inherit it.
  program.enablePositionalOptions();
  return program;
}
