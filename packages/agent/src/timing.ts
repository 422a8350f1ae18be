/** Retry and liveness timing of an agent; tests shorten these. */
export interface AgentTiming {
  /** Ceiling of the first reconnect/re-register delay (full jitter below it). */
  backoffBaseMs: number;
  /** Ceiling of every backoff delay. */
  backoffCapMs: number;
  /** A connection that stayed up this long resets the backoff. */
  stableAfterMs: number;
  /** Retry delay after the server refused us (bad token, rejected host): an operator has to act first. */
  slowRetryMs: number;
  /** Timeout of the registration request and of the WebSocket handshake. */
  requestTimeoutMs: number;
  /** How long stop() waits for the server to answer a close before dropping the socket. */
  closeTimeoutMs: number;
  /**
   * How often a connected agent re-reads its inventory and reports it when it changed since the
   * connection's hello (an address DHCP gave after the agent connected, a renamed host, a new disk).
   */
  inventoryCheckMs: number;
}

export const DEFAULT_TIMING: AgentTiming = {
  backoffBaseMs: 1000,
  backoffCapMs: 30_000,
  stableAfterMs: 10_000,
  slowRetryMs: 60_000,
  requestTimeoutMs: 15_000,
  closeTimeoutMs: 1000,
  inventoryCheckMs: 30_000,
};
