import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { type CommandContext, examples } from './common.js';
import { LOG_LEVELS } from './server.js';

interface AgentCommandOptions {
  config?: string;
  server?: string;
  token?: string;
  dataDir?: string;
  deviceRoot?: string;
  simulated?: boolean;
  logLevel?: string;
}

export function registerAgent(program: Command, ctx: CommandContext): void {
  program
    .command('agent')
    .summary('run the edge agent on this device')
    .description(
      'Run the edge agent: register this device with the control plane (once, with a registration ' +
        'token), keep an outbound connection to it, and converge the device to its desired spec. ' +
        'Flags override the values of the YAML config file.\n\n' +
        'With --simulated the agent drives a simulated device (fake hardware, files under a sandbox ' +
        'directory) instead of this machine; use it to try Edgeplane on a laptop.',
    )
    .option('-c, --config <file>', 'agent config file (YAML: server, token, site, labels, dataDir, deviceRoot, logLevel)')
    .option('--server <url>', 'control plane URL')
    .option('--token <token>', 'registration token (only needed until the device has registered)')
    .option('--data-dir <dir>', 'where the agent keeps its identity, last spec and queued events')
    .option('--device-root <dir>', 'root of the device file tree (default /; for --simulated, <data-dir>/sim-device)')
    .option('--simulated', 'drive a simulated device instead of this machine')
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(LOG_LEVELS))
    .addHelpText(
      'after',
      examples(
        'edgeplane agent --config /etc/edgeplane/agent.yaml',
        'edgeplane agent --server http://localhost:8080 --token ert_... --data-dir ./agent-1 --simulated',
      ),
    )
    .action(async (opts: AgentCommandOptions) => {
      const { io } = ctx;
      // Imported here so other commands do not load the agent.
      const { loadAgentConfig, Agent, LinuxDevice, SimDevice } = await import('@edgeplane/agent');
      const config = await loadAgentConfig(opts.config, {
        server: opts.server,
        token: opts.token,
        dataDir: opts.dataDir && resolve(opts.dataDir),
        deviceRoot: opts.deviceRoot && resolve(opts.deviceRoot),
        logLevel: opts.logLevel as AgentLogLevel | undefined,
      });
      // A simulated device must never write under the real '/': give it a sandbox by default.
      const simRoot = opts.deviceRoot || config.deviceRoot !== '/' ? config.deviceRoot : join(config.dataDir, 'sim-device');
      const device = opts.simulated ? new SimDevice({ root: simRoot }) : new LinuxDevice({ root: config.deviceRoot });
      // The agent logs (pino, JSON) at config.logLevel; the lines below are for the person at the terminal.
      const agent = new Agent({ config, device });
      agent.on('connected', ({ hostName, state }) => io.stderr.write(`Connected to ${config.server} as host ${hostName} (${state}).\n`));
      await agent.start();
      io.stderr.write(
        `Edgeplane agent started (${opts.simulated ? `simulated device under ${simRoot}` : `device root ${config.deviceRoot}`}), server ${config.server}. Press Ctrl+C to stop.\n`,
      );
      const signal = await io.waitForShutdown();
      io.stderr.write(`Received ${signal}; stopping the agent.\n`);
      await agent.stop();
    });
}

type AgentLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
