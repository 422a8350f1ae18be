import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface HttpEndpoint {
  /** `METHOD url authorization` of every request received, in order. */
  hits: string[];
  /** `127.0.0.1:<port>`. */
  host: string;
  close(): Promise<void>;
}

/**
 * A plain HTTP server on loopback that records every request and answers with `handle`: a stand-in
 * for a hostile or odd registry (and for the internal service it should never reach).
 */
export async function httpEndpoint(handle: (req: IncomingMessage, res: ServerResponse, host: string) => void): Promise<HttpEndpoint> {
  const hits: string[] = [];
  let host = '';
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    handle(req, res, host);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  host = `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    hits,
    host,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
