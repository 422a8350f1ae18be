import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { pino } from 'pino';
import { formatDuration } from '../output.js';
import { durationOption, intArg } from '../parse.js';
import { Progress } from '../progress.js';
import { type CommandContext, examples } from './common.js';
import { LOG_LEVELS } from './server.js';

interface SimCommandOptions {
  server: string;
  token: string;
  sites: number;
  nodesPerSite: number;
  appliances: number;
  unmanagedPerSite: number;
  dataDir: string;
  connectTimeout: number;
  logLevel: string;
}

/** How many of the fleet's agents are connected (Agent.connected: welcomed by the server). */
export function countConnected(agents: readonly { connected: boolean }[]): number {
  return agents.filter((a) => a.connected).length;
}

export function registerSim(program: Command, ctx: CommandContext): void {
  program
    .command('sim')
    .summary('simulate a fleet of edge hosts against a server')
    .description(
      'Run a simulated fleet: sites x nodes-per-site agents in this process, each driving a SIMULATED ' +
        'device (fake hardware, files under --data-dir). They register with the token and connect to the ' +
        'server like real hosts. Runs until Ctrl+C; a restart with the same --data-dir brings back the ' +
        'same devices.',
    )
    .requiredOption('--server <url>', 'control plane URL')
    .requiredOption('--token <token>', 'registration token the simulated hosts register with')
    .requiredOption('--sites <n>', 'number of sites', intArg('--sites'))
    .option('--nodes-per-site <n>', 'hosts per site', intArg('--nodes-per-site'), 1)
    .option(
      '--appliances <n>',
      'also run N simulated Virtualized Edge appliances (libvirt test driver via virsh; each running VM gets a simulated agent)',
      intArg('--appliances'),
      0,
    )
    .option(
      '--unmanaged-per-site <n>',
      "of each site's hosts, the last N keep their own OS (no A/B slots: agent mode, profiles without an os layer)",
      intArg('--unmanaged-per-site'),
      0,
    )
    .option('--data-dir <dir>', 'where the simulated devices keep their files', './.edgeplane-sim')
    .addOption(durationOption('--connect-timeout <duration>', 'how long to wait for every agent to connect (e.g. 2m)', '5m'))
    .addOption(new Option('--log-level <level>', 'agent log level').choices(LOG_LEVELS).default('warn'))
    .addHelpText(
      'after',
      examples(
        'edgeplane sim --server http://localhost:8080 --token eprt_... --sites 10 --nodes-per-site 3 --data-dir ./fleet',
        'edgeplane sim --server http://localhost:8080 --token eprt_... --sites 1 --appliances 1   # needs virsh (libvirt-clients)',
      ),
    )
    .action(async (opts: SimCommandOptions) => {
      const { io } = ctx;
      // Listen for Ctrl+C from the start: stopping while agents still connect is fine.
      const shutdown = io.waitForShutdown();
      // Imported here so other commands do not load the simulator.
      const { startFleet } = await import('@edgeplane/sim');
      const started = Date.now();
      const fleet = await startFleet({
        server: opts.server,
        token: opts.token,
        sites: opts.sites,
        nodesPerSite: opts.nodesPerSite,
        appliances: opts.appliances,
        unmanagedPerSite: opts.unmanagedPerSite,
        dataDir: resolve(opts.dataDir),
        logger: pino({ level: opts.logLevel }),
      });
      const total = fleet.agents.length;
      io.stderr.write(
        `Started ${total} simulated agents (${opts.sites} sites x ${opts.nodesPerSite}${opts.appliances ? ` + ${opts.appliances} appliances` : ''}) against ${opts.server}.\n`,
      );
      const progress = new Progress(io.stderr, total, 'agents connected');
      progress.update(countConnected(fleet.agents));
      const timer = setInterval(() => progress.update(countConnected(fleet.agents)), 250);
      const allConnected = fleet.waitUntilConnected(opts.connectTimeout).then(
        (result: unknown) => result !== false,
        () => false,
      );
      const first = await Promise.race([allConnected.then((ok: boolean) => ({ ok })), shutdown.then((signal) => ({ signal }))]);
      clearInterval(timer);
      progress.update(countConnected(fleet.agents));
      progress.finish();
      let signal: string;
      if ('signal' in first) {
        signal = first.signal;
      } else {
        const elapsed = formatDuration(Date.now() - started);
        io.stderr.write(
          first.ok
            ? `All ${total} agents connected in ${elapsed}. Press Ctrl+C to stop.\n`
            : `${countConnected(fleet.agents)}/${total} agents connected after ${elapsed}; the others keep retrying. Press Ctrl+C to stop.\n`,
        );
        signal = await shutdown;
      }
      io.stderr.write(`Received ${signal}; stopping the fleet.\n`);
      await fleet.stop();
    });
}
