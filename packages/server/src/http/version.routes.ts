import { API_VERSION, EdgeplaneError, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, protocolMajor } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';

/** What GET /api/v1/version answers: public, like /healthz (the OpenAPI document shows the same). */
export interface VersionInfo {
  serverVersion: string;
  /** PROTOCOL_VERSION: the major CLIs and agents must speak. */
  protocolVersion: number;
  apiVersion: string;
}

export async function versionRoutes(app: FastifyInstance, deps: { serverVersion: string }): Promise<void> {
  const info: VersionInfo = { serverVersion: deps.serverVersion, protocolVersion: PROTOCOL_VERSION, apiVersion: API_VERSION };
  app.get('/api/v1/version', async () => info);
}

/**
 * Refuses CLIs and agents that send a protocol version of another major (PROTOCOL_VERSION_HEADER),
 * before authentication and before a WebSocket upgrade, so an old agent or CLI learns why it is
 * refused instead of failing on a schema. No header: accepted (curl, the console, older clients).
 */
export function installProtocolVersionCheck(app: FastifyInstance): void {
  app.addHook('onRequest', async (req) => {
    const sent = req.headers[PROTOCOL_VERSION_HEADER];
    if (sent === undefined) return;
    const value = (Array.isArray(sent) ? sent.join(',') : sent).slice(0, 32);
    if (protocolMajor(value) === PROTOCOL_VERSION) return;
    const what = protocolMajor(value) === undefined ? `an unknown protocol version ${JSON.stringify(value)}` : `protocol version ${value}`;
    throw new EdgeplaneError(
      'ProtocolVersionUnsupported',
      `this client (CLI or agent) speaks Edgeplane ${what}; this server speaks protocol version ${PROTOCOL_VERSION}. ` +
        "The major versions must match: install the CLI or agent of the server's release.",
      { clientVersion: value, serverVersion: String(PROTOCOL_VERSION) },
    );
  });
}
