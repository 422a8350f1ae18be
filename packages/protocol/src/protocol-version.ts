// Plain constants, no zod: the CLI reads them at start-up (`@edgeplane/protocol/protocol-version`).

/**
 * Major version of the wire protocol: the agent <-> server message set, registration and the REST
 * API. Agents and CLIs send it in PROTOCOL_VERSION_HEADER (agents also in their hello); the server
 * refuses another major with ProtocolVersionUnsupported. No header: accepted (curl, the console).
 */
export const PROTOCOL_VERSION = 1;

export const PROTOCOL_VERSION_HEADER = 'edgeplane-protocol-version';

/** The major of a protocol version as sent in PROTOCOL_VERSION_HEADER (`1`, or `1.2`); undefined when it is not one. */
export function protocolMajor(version: string): number | undefined {
  const m = /^(\d{1,6})(\.\d{1,6})?$/.exec(version.trim());
  return m ? Number(m[1]) : undefined;
}
