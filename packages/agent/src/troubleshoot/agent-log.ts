import { renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type DestinationStream, destination, type Level, type Logger, levels, multistream, pino, type StreamEntry, symbols } from 'pino';
import type { AgentConfig } from '../config.js';

export const AGENT_LOG_FILE = 'agent.log';
/** agent.log is moved to agent.log.1 at start once it is this big, so it cannot fill the disk. */
const ROTATE_BYTES = 10 * 1024 * 1024;

/**
 * The agent's logger: JSON lines to stdout (for journald or the terminal) and, unless
 * troubleshoot.logToFile is false, to <dataDir>/agent.log, which operators read with
 * `edgeplane logs HOST` and which goes into support bundles. `alsoTo` sends the same lines to
 * another logger's destination at that logger's level instead of stdout: the simulator's many
 * agents share its log that way and still keep one agent.log each.
 */
export function createAgentLogger(config: AgentConfig, options: { stdout?: boolean; alsoTo?: Logger } = {}): Logger {
  const level = (l: string) => (l === 'silent' ? 'fatal' : l) as Level;
  const streams: StreamEntry[] = [];
  if (options.alsoTo) {
    if (options.alsoTo.level !== 'silent')
      streams.push({ level: level(options.alsoTo.level), stream: (options.alsoTo as unknown as Record<symbol, DestinationStream>)[symbols.streamSym] });
  } else if (options.stdout !== false) streams.push({ level: level(config.logLevel), stream: process.stdout });
  if (config.troubleshoot.logToFile) {
    const file = join(config.dataDir, AGENT_LOG_FILE);
    try {
      if (statSync(file).size > ROTATE_BYTES) renameSync(file, `${file}.1`);
    } catch {
      /* no log yet */
    }
    streams.push({ level: level(config.logLevel), stream: destination({ dest: file, mkdir: true, sync: true }) });
  }
  if (streams.length === 0) return pino({ level: 'silent' });
  // The logger passes the lowest level any stream wants; each stream drops what is below its own.
  const lowest = streams.reduce((min, s) => (levels.values[s.level as Level] < levels.values[min] ? (s.level as Level) : min), 'fatal' as Level);
  return pino({ level: lowest, name: 'edgeplane-agent' }, multistream(streams));
}
