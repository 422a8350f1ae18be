import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CliError } from '../errors.js';
import { intArg } from '../parse.js';
import { type CommandContext, examples } from './common.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

interface ServerCommandOptions {
  host?: string;
  port: number;
  dataDir: string;
  databaseUrl?: string;
  offlineAfter: number;
  publicUrl?: string;
  logLevel: string;
  requestTimeout: number;
  connectionTimeout: number;
  keepAliveTimeout: number;
  maxRequestsPerSocket: number;
  maxConnections: number;
  trustedProxy?: string[];
  tlsCert?: string;
  tlsKey?: string;
  allowedRegistries?: string[];
  maxPendingPairings: number;
  maxPendingPairingsPerSource: number;
  maxWatchesPerToken: number;
  eventRetentionDays: number;
  maxEventsPerObject: number;
  drainDelay?: number;
  replicaUrl?: string;
}

/** `--replica-url http://10.0.0.11:8080`: an http(s) URL other replicas can reach. */
function replicaUrlArg(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`--replica-url must be an http:// or https:// URL (got "${value}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError(`--replica-url must be an http:// or https:// URL (got "${value}")`);
  return value;
}

/** `--allowed-registries reg.lab:5000,ghcr.io`: registries (host[:port]) OS images may name. */
function registryList(value: string): string[] {
  const list = value
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  const bad = list.find((r) => !/^[a-zA-Z0-9.-]+(?::\d{1,5})?$/.test(r));
  if (bad || !list.length) throw new InvalidArgumentError(`expected host[:port],... (got "${bad ?? value}")`);
  return list;
}

/** `--trusted-proxy 10.0.0.5,10.1.0.0/16`: IPs, CIDRs, or proxy-addr's names (loopback, linklocal, uniquelocal). */
function proxyList(value: string): string[] {
  const list = value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const valid = (p: string) => {
    if (['loopback', 'linklocal', 'uniquelocal'].includes(p)) return true;
    const [ip, bits, ...rest] = p.split('/');
    const family = isIP(ip);
    if (!family || rest.length) return false;
    return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
  };
  const bad = list.find((p) => !valid(p));
  if (bad || !list.length) throw new InvalidArgumentError(`expected IP or CIDR addresses separated by commas (got "${bad ?? value}")`);
  return list;
}

/**
 * What `edgeplane server` prints once the server listens: where it is, and how to log in. The admin
 * token of a first start is printed only to a terminal (`showToken`); a service's output ends up in
 * a log (the journal), where a secret does not belong: it then points at the token file instead.
 */
export function serverBanner(server: { url: string; adminToken?: string; adminTokenFile: string }, showToken = true): string {
  const url = server.url.replace(/\/+$/, '');
  const lines = ['', `Edgeplane server is running.`, `  Console: ${url}/`, `  API:     ${url}/api/v1`, ''];
  if (server.adminToken && !showToken) {
    lines.push(
      `An admin user was created. Its API token is in ${server.adminTokenFile} (mode 0600; not printed: the output is not a terminal).`,
      'Log in with:',
      `  edgeplane login --server ${url} --token "$(cat ${server.adminTokenFile})"`,
    );
  } else if (server.adminToken) {
    lines.push(
      'An admin user was created. Its API token (also saved to the file below, mode 0600):',
      `  ${server.adminToken}`,
      `  saved to ${server.adminTokenFile}`,
      '',
      'Log in with:',
      `  edgeplane login --server ${url} --token ${server.adminToken}`,
    );
  } else {
    lines.push(
      `The admin API token is in ${server.adminTokenFile} (written on first start).`,
      'Log in with:',
      `  edgeplane login --server ${url} --token "$(cat ${server.adminTokenFile})"`,
    );
  }
  lines.push('', 'Press Ctrl+C to stop.', '');
  return lines.join('\n');
}

export function registerServer(program: Command, ctx: CommandContext): void {
  const server = program
    .command('server')
    .summary('run the control plane (API, console, agent endpoint)')
    .description(
      'Run the Edgeplane control plane: the REST API, the web console and the endpoint agents connect ' +
        'to. Data is kept in SQLite under --data-dir unless a PostgreSQL URL is given. On the first start ' +
        'an admin user is created and its API token printed and saved under the data dir.',
    )
    .option('--host <address>', 'address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every interface)')
    .option('--port <port>', 'port to listen on; 0 picks a free one', intArg('--port', { allowZero: true }), 8080)
    .option('--data-dir <dir>', 'directory for the SQLite database and the admin token file', './.edgeplane')
    .option('--database-url <url>', 'postgres://... to store data in PostgreSQL instead of SQLite (env EDGEPLANE_DATABASE_URL)')
    .option('--offline-after <seconds>', 'mark a host offline after this many seconds without a message', intArg('--offline-after'), 90)
    .option('--public-url <url>', 'URL printed and used in generated links instead of the Host header (default http(s)://<host>:<port>)')
    .option('--tls-cert <file>', 'PEM certificate (chain): serve HTTPS and WSS only (needs --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--trusted-proxy <ip|cidr,...>', 'proxies whose X-Forwarded-For/-Proto/-Host are believed (default none)', proxyList)
    .option('--request-timeout <seconds>', 'close a connection that has not sent its whole request (headers and body) in time', intArg('--request-timeout'), 30)
    .option('--connection-timeout <seconds>', 'close a connection silent this long while a request is in progress', intArg('--connection-timeout'), 120)
    .option('--keep-alive-timeout <seconds>', 'close an idle keep-alive connection after this long', intArg('--keep-alive-timeout'), 72)
    .option(
      '--max-requests-per-socket <n>',
      'requests one keep-alive connection may carry before it is closed; 0: no limit',
      intArg('--max-requests-per-socket', { allowZero: true }),
      1000,
    )
    .option('--max-connections <n>', 'open connections at once, agent channels included; more are closed on accept', intArg('--max-connections'), 20000)
    .option('--max-pending-pairings <n>', 'unclaimed pairing sessions held at once; more starts answer 429', intArg('--max-pending-pairings'), 10000)
    .option(
      '--max-pending-pairings-per-source <n>',
      'unclaimed pairing sessions from one client address (IPv6: one /64)',
      intArg('--max-pending-pairings-per-source'),
      20,
    )
    .option('--max-watches-per-token <n>', 'watch streams (console tabs, `get -w`) one API token may hold open at once', intArg('--max-watches-per-token'), 20)
    .option('--event-retention-days <days>', 'delete events older than this', intArg('--event-retention-days'), 7)
    .option('--max-events-per-object <n>', 'keep only the newest events of each host, cluster, ...', intArg('--max-events-per-object'), 1000)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .option('--allowed-registries <host[:port],...>', 'OS images in cluster profiles may only come from these registries (default: any)', registryList)
    .option(
      '--drain-delay <seconds>',
      'on SIGTERM, answer not-ready on /readyz this long before handing agents to other replicas (default env EDGEPLANE_DRAIN_DELAY_MS, else 0)',
      intArg('--drain-delay', { allowZero: true }),
    )
    .option(
      '--replica-url <url>',
      'where other replicas reach this one to proxy remote sessions (default env EDGEPLANE_REPLICA_URL, else the listen address); replicas share EDGEPLANE_REPLICA_SECRET (env only: a secret does not belong on a command line)',
      replicaUrlArg,
    )
    .addHelpText(
      'after',
      examples(
        'edgeplane server',
        'edgeplane server --port 9090 --data-dir /var/lib/edgeplane',
        'edgeplane server --host 0.0.0.0 --port 8443 --tls-cert /etc/edgeplane/tls.crt --tls-key /etc/edgeplane/tls.key --public-url https://edge.example.com:8443',
        'edgeplane server --trusted-proxy 10.0.0.5 --public-url https://edge.example.com   # behind a TLS proxy',
        'EDGEPLANE_DATABASE_URL=postgres://edgeplane@db/edgeplane edgeplane server',
        'EDGEPLANE_REPLICA_SECRET=... edgeplane server --database-url postgres://edgeplane@db/edgeplane --host 0.0.0.0 --drain-delay 10 --replica-url http://10.0.0.11:8080   # one of several replicas',
      ),
    )
    .action(async (opts: ServerCommandOptions) => {
      const { io } = ctx;
      if (!opts.tlsCert !== !opts.tlsKey) throw new CliError('--tls-cert and --tls-key go together: give both or neither');
      // Imported here so resource commands do not load the server (Fastify, SQLite) at all.
      const { startServer } = await import('@edgeplane/server');
      const server = await startServer({
        host: opts.host,
        port: opts.port,
        dataDir: resolve(opts.dataDir),
        databaseUrl: opts.databaseUrl ?? (io.env.EDGEPLANE_DATABASE_URL || undefined),
        offlineAfterSeconds: opts.offlineAfter,
        publicUrl: opts.publicUrl,
        logLevel: opts.logLevel,
        requestTimeoutMs: opts.requestTimeout * 1000,
        connectionTimeoutMs: opts.connectionTimeout * 1000,
        keepAliveTimeoutMs: opts.keepAliveTimeout * 1000,
        maxRequestsPerSocket: opts.maxRequestsPerSocket,
        maxConnections: opts.maxConnections,
        trustedProxies: opts.trustedProxy,
        tlsCert: opts.tlsCert && resolve(opts.tlsCert),
        tlsKey: opts.tlsKey && resolve(opts.tlsKey),
        allowedRegistries: opts.allowedRegistries,
        maxPendingPairings: opts.maxPendingPairings,
        maxPendingPairingsPerSource: opts.maxPendingPairingsPerSource,
        maxWatchesPerToken: opts.maxWatchesPerToken,
        eventRetentionDays: opts.eventRetentionDays,
        maxEventsPerObject: opts.maxEventsPerObject,
        drainDelayMs: opts.drainDelay === undefined ? undefined : opts.drainDelay * 1000,
        replicaUrl: opts.replicaUrl,
      });
      io.stdout.write(serverBanner(server, io.stdout.isTTY === true));
      const signal = await io.waitForShutdown();
      io.stderr.write(`Received ${signal}; shutting down.\n`);
      await server.close();
    });
  registerAdminTokenReset(server, ctx);
}

/**
 * `edgeplane server admin-token --reset`: recovery for a locked-out install, run on the server
 * machine with the store the server uses (the server may keep running). Re-enables or re-creates
 * user `admin` with role admin and prints a fresh API token (also written to <data-dir>/admin-token).
 */
function registerAdminTokenReset(server: Command, ctx: CommandContext): void {
  server
    .command('admin-token')
    .summary('issue a fresh admin API token from the store (recovery for a locked-out install)')
    .description(
      'Recovery when no admin can log in any more (every admin disabled, demoted or deleted, or the admin ' +
        'token lost). Run it on the server machine with the same --data-dir and --database-url as the server: ' +
        'it re-enables user "admin" with role admin (creating it if it is gone), issues it a new API token, ' +
        'prints it and writes it to <data-dir>/admin-token (mode 0600). Recorded in the audit log as admin.recover.',
    )
    .requiredOption('--reset', 'confirm: re-enable the admin user and issue a new token')
    .option('--data-dir <dir>', 'the server data directory (SQLite database, admin token file)', './.edgeplane')
    .option('--database-url <url>', 'postgres://... when the server stores data in PostgreSQL (env EDGEPLANE_DATABASE_URL)')
    .addHelpText('after', examples('edgeplane server admin-token --reset --data-dir /var/lib/edgeplane'))
    .action(async (opts: { dataDir: string; databaseUrl?: string }, cmd: Command) => {
      const { io } = ctx;
      // The parent `server` command takes the same flags and commander lets it parse them after the
      // subcommand name too: take each from whichever command saw it on the command line.
      const parent = cmd.parent!;
      const pick = <K extends keyof typeof opts>(k: K) =>
        cmd.getOptionValueSource(k) !== 'cli' && parent.getOptionValueSource(k) === 'cli' ? (parent.opts()[k] as (typeof opts)[K]) : opts[k];
      const all = { dataDir: pick('dataDir'), databaseUrl: pick('databaseUrl') };
      const { resetAdminToken } = await import('@edgeplane/server');
      const r = await resetAdminToken({ dataDir: resolve(all.dataDir), databaseUrl: all.databaseUrl ?? (io.env.EDGEPLANE_DATABASE_URL || undefined) });
      const was = [
        r.repaired.wasDisabled ? 'disabled' : '',
        r.repaired.previousRole && r.repaired.previousRole !== 'admin' ? `role ${r.repaired.previousRole}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      const what = r.repaired.created
        ? 'User "admin" was missing and has been created with role admin.'
        : `User "admin" is an enabled admin${was ? ` again (was ${was})` : ''}.`;
      io.stdout.write(
        [
          what,
          `New API token "${r.tokenName}" (also saved to ${r.tokenFile}, mode 0600):`,
          `  ${r.token}`,
          'Older tokens are unchanged; delete the ones you no longer trust.',
          '',
        ].join('\n'),
      );
    });
}
