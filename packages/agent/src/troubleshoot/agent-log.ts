import { renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { destination, type Logger, multistream, pino, type StreamEntry } from 'pino';
import type { AgentConfig } from '../config.js';

export const AGENT_LOG_FILE = 'agent.log';
/** agent.log is moved to agent.log.1 at start once it is this big, so it cannot fill the disk. */
const ROTATE_BYTES = 10 * 1024 * 1024;

/**
 * The agent's logger: JSON lines to stdout (for journald or the terminal) and, unless
 * troubleshoot.logToFile is false, to <dataDir>/agent.log, which operators read with
 * `edgeplane logs HOST` and which goes into support bundles.
 */
export function createAgentLogger(config: AgentConfig, options: { stdout?: boolean } = {}): Logger {
  const streams: StreamEntry[] = [];
  if (options.stdout !== false) streams.push({ level: config.logLevel === 'silent' ? 'fatal' : config.logLevel, stream: process.stdout });
  if (config.troubleshoot.logToFile) {
    const file = join(config.dataDir, AGENT_LOG_FILE);
    try {
      if (statSync(file).size > ROTATE_BYTES) renameSync(file, `${file}.1`);
    } catch {
      /* no log yet */
    }
    streams.push({ level: config.logLevel === 'silent' ? 'fatal' : config.logLevel, stream: destination({ dest: file, mkdir: true, sync: true }) });
  }
  if (streams.length === 0) return pino({ level: 'silent' });
  return pino({ level: config.logLevel, name: 'edgeplane-agent' }, multistream(streams));
}
