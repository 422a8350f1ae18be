import { findKindMeta, KIND_TABLE, type KindMeta } from '@edgeplane/protocol/kind-table';
import { type Command, Option } from 'commander';
import { ApiClient } from '../api-client.js';
import { type ConnectionFlags, resolveTarget } from '../config.js';
import { CliError } from '../errors.js';
import type { CliIo } from '../io.js';
import { OUTPUT_FORMATS } from '../output.js';

/** What every command registration gets: where to write, and a place to leave the exit code. */
export interface CommandContext {
  io: CliIo;
  exitCode: number;
}

/** Adds --server, --token, --context and --ca-file, which every command that calls the API takes. */
export function withConnectionOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'API server URL (overrides the context; env EDGEPLANE_SERVER)')
    .option('--token <token>', 'API token (overrides the context; env EDGEPLANE_TOKEN)')
    .option('--context <name>', 'use this context from the config file instead of the current one')
    .option('--ca-file <file>', 'PEM file of CA certificates to trust for an https server, besides the system store (env EDGEPLANE_CA_FILE)');
}

export function outputOption(formats: readonly string[] = OUTPUT_FORMATS): Option {
  return new Option('-o, --output <format>', 'output format').choices([...formats]).default('table');
}

export function clientFor(flags: ConnectionFlags, io: CliIo): ApiClient {
  const target = resolveTarget(flags, io.env);
  return new ApiClient({ server: target.server, token: target.token, caFile: target.caFile });
}

export function knownKindsText(): string {
  return KIND_TABLE.map((k) => (k.shortNames.length ? `${k.plural} (${k.shortNames.join(', ')})` : k.plural)).join(', ');
}

/** Resolves a kind by plural, singular, Kind or short name; an unknown kind lists the known ones. */
export function kindOrThrow(name: string): KindMeta {
  const kind = findKindMeta(name);
  if (!kind) throw new CliError(`unknown kind "${name}"; known kinds: ${knownKindsText()}`);
  return kind;
}

export { examples } from './help-text.js';
