import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { pino } from 'pino';
import { type CommandContext, examples } from './common.js';
import { LOG_LEVELS } from './server.js';

interface AgentCommandOptions {
  config?: string;
  seed?: string;
  server?: string;
  caFile?: string;
  token?: string;
  pairingKey?: string;
  pairingPort?: string;
  pairingListen?: string;
  pairingPage?: boolean;
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
        'directory) instead of this machine; use it to try Edgeplane on a laptop.\n\n' +
        'Registration: with --token (or a token in the config) the device registers with it; with ' +
        '--pairing-key it takes the host an operator pre-registered for its device UID; with neither it ' +
        'pairs at the edge: it prints a pairing code and a QR, serves them on a local page (port 5080, ' +
        'loopback and site LAN), and registers once an operator claims the code (`edgeplane claim CODE`).',
    )
    .option(
      '-c, --config <file>',
      'agent config file: the agent YAML (server, token, site, labels, dataDir, ...) or installer user-data (#cloud-config with an edgeplane: key)',
    )
    .option('--seed <path>', 'read the config from a cloud-init NoCloud seed: a directory, an ISO image, or a device such as /dev/sr0')
    .option('--server <url>', 'control plane URL')
    .option('--ca-file <file>', 'PEM file of CA certificates to trust for an https server, in addition to the system store')
    .option('--token <token>', 'registration token (only needed until the device has registered)')
    .option('--pairing-key <key>', 'one-time pairing key of the host pre-registered for this device UID')
    .option('--pairing-port <port>', 'port of the local pairing page (default 5080)')
    .option('--pairing-listen <addresses>', 'comma-separated addresses for the pairing page (default loopback + private LAN addresses)')
    .option('--no-pairing-page', 'do not serve the local pairing page (the code and QR still go to the terminal)')
    .option('--data-dir <dir>', 'where the agent keeps its identity, last spec and queued events')
    .option('--device-root <dir>', 'root of the device file tree (default /; for --simulated, <data-dir>/sim-device)')
    .option('--simulated', 'drive a simulated device instead of this machine')
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(LOG_LEVELS))
    .addHelpText(
      'after',
      examples(
        'edgeplane agent --config /etc/edgeplane/agent.yaml',
        'edgeplane agent --server http://localhost:8080 --token eprt_... --data-dir ./agent-1 --simulated',
        'edgeplane agent --config /var/lib/cloud/seed/nocloud/user-data',
        'edgeplane agent --seed /dev/sr0',
        'edgeplane agent --server https://cp.example.com   # no token: pair with a code',
        'edgeplane agent --server https://cp.example.com --ca-file /etc/edgeplane/ca.pem --token eprt_...',
      ),
    )
    .action(async (opts: AgentCommandOptions) => {
      const { io } = ctx;
      // Imported here so other commands do not load the agent.
      const {
        loadAgentConfig,
        loadAgentConfigFromSeed,
        Agent,
        LinuxDevice,
        SimDevice,
        SimKubernetesGuestDevice,
        imageSimulatesKubernetes,
        SIMULATED_KUBERNETES_MARKER,
        hasAbPartitions,
        attachPairingDisplay,
        AgentConfigError,
      } = await import('@edgeplane/agent');
      if (opts.seed && opts.config) throw new AgentConfigError('give --config or --seed, not both');
      const port = opts.pairingPort === undefined ? undefined : Number(opts.pairingPort);
      if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) throw new AgentConfigError('--pairing-port must be a port number');
      const overrides = {
        server: opts.server,
        caFile: opts.caFile && resolve(opts.caFile),
        token: opts.token,
        pairingKey: opts.pairingKey,
        dataDir: opts.dataDir && resolve(opts.dataDir),
        deviceRoot: opts.deviceRoot && resolve(opts.deviceRoot),
        logLevel: opts.logLevel as AgentLogLevel | undefined,
      };
      let config = opts.seed ? await loadAgentConfigFromSeed(opts.seed, overrides) : await loadAgentConfig(opts.config, overrides);
      config = {
        ...config,
        pairingPage: {
          ...config.pairingPage,
          ...(opts.pairingPage === false ? { enabled: false } : {}),
          ...(port !== undefined ? { port } : {}),
          ...(opts.pairingListen
            ? {
                listen: opts.pairingListen
                  .split(',')
                  .map((s) => s.trim())
                  .filter(Boolean),
              }
            : {}),
        },
      };
      // A simulated device must never write under the real '/': give it a sandbox by default.
      const simRoot = opts.deviceRoot || config.deviceRoot !== '/' ? config.deviceRoot : join(config.dataDir, 'sim-device');
      // A real machine without the root-a/root-b partitions keeps its own OS (agent mode).
      const linux = async () =>
        new LinuxDevice({ root: config.deviceRoot, ...((await hasAbPartitions(config.deviceRoot)) ? {} : { slots: 'unmanaged' as const }) });
      // An OS image built with simulateKubernetes (no distribution in it) opts its machines into a
      // simulated Kubernetes layer on the real device; said at start and in the inventory.
      const simulatedKubernetes = !opts.simulated && (await imageSimulatesKubernetes(config.deviceRoot));
      const device = opts.simulated
        ? new SimDevice({ root: simRoot })
        : simulatedKubernetes
          ? new SimKubernetesGuestDevice(await linux(), {
              stateDir: join(config.dataDir, 'simulated-kubernetes'),
              log: (line) => io.stderr.write(`${line}\n`),
            })
          : await linux();
      if (simulatedKubernetes)
        io.stderr.write(
          `Kubernetes SIMULATED on this machine: the OS image carries ${SIMULATED_KUBERNETES_MARKER}; the OS, slots, reboots, files and network are real.\n`,
        );
      // The agent logs (pino, JSON) at config.logLevel; the lines below are for the person at the terminal.
      const agent = new Agent({ config, device });
      const detachPairing = attachPairingDisplay(agent, {
        write: (text) => io.stderr.write(text),
        page: config.pairingPage,
        logger: pino({ level: config.logLevel, name: 'edgeplane-agent' }),
      });
      agent.on('connected', ({ hostName, state }) => io.stderr.write(`Connected to ${config.server} as host ${hostName} (${state}).\n`));
      await agent.start();
      io.stderr.write(
        `Edgeplane agent started (${opts.simulated ? `simulated device under ${simRoot}` : `device root ${config.deviceRoot}`}), server ${config.server}. Press Ctrl+C to stop.\n`,
      );
      const signal = await io.waitForShutdown();
      io.stderr.write(`Received ${signal}; stopping the agent.\n`);
      await agent.stop();
      await detachPairing();
    });
}

type AgentLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
