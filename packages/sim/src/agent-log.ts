import { type AgentConfig, createAgentLogger } from '@edgeplane/agent';
import type { Logger } from 'pino';

/**
 * A simulated agent's logger: the simulator's log, plus the agent's own agent.log in its data dir
 * (as on a real device), so `edgeplane logs HOST` and support bundles find it.
 */
export function simAgentLogger(config: AgentConfig, fleet: Logger, hostname: string, bindings: Record<string, unknown> = {}): Logger {
  return createAgentLogger(config, { alsoTo: fleet }).child({ sim: hostname, ...bindings });
}
