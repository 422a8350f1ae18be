import { readFileSync } from 'node:fs';
import { type ServerOptions as HttpServerOptions, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { EdgeplaneError, type ErrorCode } from '@edgeplane/protocol';
import type { FastifyServerOptions } from 'fastify';
import type { ServerOptions } from '../options.js';

export const TRANSPORT_DEFAULTS = {
  requestTimeoutMs: 30_000,
  connectionTimeoutMs: 120_000,
  keepAliveTimeoutMs: 72_000,
  maxRequestsPerSocket: 1000,
  maxConnections: 20_000,
};

/** What buildApp hands to the Fastify constructor, plus the connection cap it sets on the server. */
export interface Transport {
  fastify: Pick<
    FastifyServerOptions,
    'requestTimeout' | 'connectionTimeout' | 'keepAliveTimeout' | 'maxRequestsPerSocket' | 'trustProxy' | 'clientErrorHandler'
  > & {
    http?: HttpServerOptions;
    https?: HttpServerOptions & { cert: Buffer; key: Buffer };
  };
  maxConnections: number;
  tls: boolean;
}

/**
 * Turns the server's options into Fastify options. Node checks request deadlines on a timer
 * (connectionsCheckingInterval, 30 s by default), so a short requestTimeout also gets a short check
 * interval: otherwise a trickling client would live up to 30 s past its deadline.
 */
export function resolveTransport(options: ServerOptions): Transport {
  const requestTimeout = options.requestTimeoutMs ?? TRANSPORT_DEFAULTS.requestTimeoutMs;
  const node: HttpServerOptions = {
    connectionsCheckingInterval: Math.min(5000, Math.max(250, Math.floor(requestTimeout / 4))),
    // Headers count against the request deadline too; never allow more time for them than for the whole request.
    headersTimeout: Math.min(60_000, requestTimeout),
  };
  if (!options.tlsCert !== !options.tlsKey) throw new Error('give both a TLS certificate and a TLS key, or neither');
  const https = options.tlsCert && options.tlsKey ? { ...node, cert: readPem(options.tlsCert, 'certificate'), key: readPem(options.tlsKey, 'key') } : undefined;
  return {
    fastify: {
      requestTimeout,
      connectionTimeout: options.connectionTimeoutMs ?? TRANSPORT_DEFAULTS.connectionTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? TRANSPORT_DEFAULTS.keepAliveTimeoutMs,
      maxRequestsPerSocket: options.maxRequestsPerSocket ?? TRANSPORT_DEFAULTS.maxRequestsPerSocket,
      // Without trusted proxies X-Forwarded-* is ignored: req.ip is the socket's peer.
      trustProxy: options.trustedProxies?.length ? options.trustedProxies : false,
      clientErrorHandler,
      ...(https ? { https } : { http: node }),
    },
    maxConnections: options.maxConnections ?? TRANSPORT_DEFAULTS.maxConnections,
    tls: !!https,
  };
}

/**
 * Errors Node raises before a request reaches Fastify (request timeout, oversized headers, bad HTTP):
 * answered in the API's error shape with a stable code, then the socket is closed. Replaces Fastify's
 * default handler, which answers with a body of its own shape.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ErrorCode =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'RequestTimeout' : err.code === 'HPE_HEADER_OVERFLOW' ? 'HeadersTooLarge' : 'MalformedRequest';
  const message =
    code === 'RequestTimeout'
      ? 'the request was not received in time'
      : code === 'HeadersTooLarge'
        ? 'the request headers are too large'
        : 'the request is not valid HTTP';
  const e = new EdgeplaneError(code, message);
  const body = JSON.stringify(e.toBody());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${file}: ${(err as Error).message}`);
  }
}
