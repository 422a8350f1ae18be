import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { CliError } from './errors.js';

/**
 * The CLI's own config file, shaped like a kubeconfig: named contexts (server + token) and the
 * current one. It holds API tokens, so it is written with mode 0600.
 */
export interface Context {
  name: string;
  server: string;
  token: string;
  /** PEM file of CAs trusted for this server (besides the system store), from `login --ca-file`. */
  caFile?: string;
}

export interface CliConfig {
  currentContext?: string;
  contexts: Context[];
}

type Env = Record<string, string | undefined>;

/** `EDGEPLANE_CONFIG`, else `$XDG_CONFIG_HOME/edgeplane/config.yaml`, else `~/.config/edgeplane/config.yaml`. */
export function configPath(env: Env): string {
  if (env.EDGEPLANE_CONFIG) return env.EDGEPLANE_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'edgeplane', 'config.yaml');
}

/** Reads the config file; a missing file is an empty config. */
export function loadConfig(path: string): CliConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { contexts: [] };
    throw err;
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new CliError(`cannot parse ${path}: ${(err as Error).message}`);
  }
  if (raw == null) return { contexts: [] };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new CliError(`${path} is not a mapping`);
  const obj = raw as { currentContext?: unknown; contexts?: unknown };
  const contexts: Context[] = [];
  for (const c of Array.isArray(obj.contexts) ? obj.contexts : []) {
    const { name, server, token, caFile } = (c ?? {}) as Record<string, unknown>;
    if (typeof name === 'string' && typeof server === 'string' && typeof token === 'string')
      contexts.push({ name, server, token, ...(typeof caFile === 'string' && caFile ? { caFile } : {}) });
  }
  return { currentContext: typeof obj.currentContext === 'string' ? obj.currentContext : undefined, contexts };
}

/** Writes the config atomically (temp file + rename), readable by the owner only. */
export function saveConfig(path: string, config: CliConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, stringify(config), { mode: 0o600 });
  // The mode option is filtered by the umask and ignored for an existing file: set it explicitly.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Adds or replaces the context with the same name. */
export function upsertContext(config: CliConfig, context: Context): CliConfig {
  const others = config.contexts.filter((c) => c.name !== context.name);
  return { ...config, contexts: [...others, context] };
}

/** A context name derived from the server URL: `localhost-8080` for http://localhost:8080. */
export function contextNameFor(server: string): string {
  try {
    const url = new URL(server);
    return url.host.replace(/[^A-Za-z0-9.-]+/g, '-');
  } catch {
    return 'default';
  }
}

export interface ConnectionFlags {
  server?: string;
  token?: string;
  context?: string;
  caFile?: string;
}

export interface Target {
  server: string;
  token?: string;
  /** PEM file of CAs to trust besides the system store. */
  caFile?: string;
  /** The context the values came from, if any. */
  context?: string;
}

/**
 * Decides where a resource command talks to. Precedence: `--server`/`--token`/`--ca-file` flags, then the
 * context named with `--context`, then `EDGEPLANE_SERVER`/`EDGEPLANE_TOKEN`/`EDGEPLANE_CA_FILE`, then the
 * current context.
 */
export function resolveTarget(flags: ConnectionFlags, env: Env): Target {
  const path = configPath(env);
  const config = loadConfig(path);
  let context: Context | undefined;
  if (flags.context) {
    context = config.contexts.find((c) => c.name === flags.context);
    if (!context) {
      const known = config.contexts.map((c) => c.name).join(', ') || 'none';
      throw new CliError(`context "${flags.context}" not found in ${path} (known: ${known})`);
    }
  } else if (config.currentContext) {
    context = config.contexts.find((c) => c.name === config.currentContext);
  }
  const explicit = flags.context !== undefined;
  const server = flags.server ?? (explicit ? context?.server : undefined) ?? env.EDGEPLANE_SERVER ?? context?.server;
  if (!server) {
    throw new CliError(
      'no server configured: run `edgeplane login --server URL --token TOKEN`, or pass --server and --token (or set EDGEPLANE_SERVER and EDGEPLANE_TOKEN)',
    );
  }
  // A context's token is only ever sent to that context's server.
  const contextToken = context && sameServer(context.server, server) ? context.token : undefined;
  const token = flags.token ?? (explicit ? contextToken : undefined) ?? env.EDGEPLANE_TOKEN ?? contextToken;
  const contextCa = context && sameServer(context.server, server) ? context.caFile : undefined;
  const caFile = flags.caFile ?? (explicit ? contextCa : undefined) ?? (env.EDGEPLANE_CA_FILE || undefined) ?? contextCa;
  return { server, token, ...(caFile ? { caFile } : {}), context: context?.name };
}

function sameServer(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}
