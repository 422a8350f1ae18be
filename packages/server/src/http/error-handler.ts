import { EdgeplaneError, type ErrorBody, type ErrorCode } from '@edgeplane/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Turns Fastify's own errors into our stable codes. */
function fromFastify(err: FastifyError): EdgeplaneError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new EdgeplaneError('BodyTooLarge', err.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new EdgeplaneError('UnsupportedMediaType', err.message);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new EdgeplaneError('MalformedJson', 'the request body is empty but declared as JSON');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new EdgeplaneError('MalformedJson', err.message);
    // A path with a broken percent-encoding (`/api/v1/projects/%ff`): the URL cannot be read at all.
    case 'FST_ERR_BAD_URL':
      return new EdgeplaneError('ValidationFailed', `invalid URL: ${err.message}`, { issues: [{ path: 'url', message: 'invalid percent-encoding' }] });
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message)))
    return new EdgeplaneError('MalformedJson', `malformed JSON: ${err.message}`);
  // Any other Fastify error about the request (FST_ERR_*, 4xx): the code of that status, so clients
  // never see Fastify's own error format. A status without a code of its own becomes ValidationFailed.
  if (typeof err.code === 'string' && err.code.startsWith('FST_ERR_') && err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
    return new EdgeplaneError(FASTIFY_STATUS_CODES[err.statusCode] ?? 'ValidationFailed', err.message, { fastifyCode: err.code });
  return undefined;
}

const FASTIFY_STATUS_CODES: Record<number, ErrorCode> = {
  400: 'ValidationFailed',
  401: 'Unauthenticated',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  413: 'BodyTooLarge',
  414: 'UriTooLong',
  415: 'UnsupportedMediaType',
  429: 'RateLimited',
};

/**
 * Fastify's `frameworkErrors` option: errors raised while routing, before any hook or the error
 * handler (a URL with broken percent-encoding, a path parameter over maxParamLength). Without it
 * Fastify answers them in its own format.
 */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const e = fromFastify(err) ?? new EdgeplaneError('ValidationFailed', err.message);
  void reply.status(e.status).send(e.toBody());
}

/** Errors of a connection the client closed or reset while its request was being read. */
function isClientAbort(err: FastifyError): boolean {
  return ['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'].includes(err.code) || err.message === 'aborted';
}

/**
 * @fastify/websocket's errorHandler: errors on an open WebSocket. A client's protocol error (a frame
 * over maxPayload, invalid UTF-8, a reset) is one warning line, not an error with a stack.
 */
export function websocketErrorHandler(err: Error & { code?: string }, socket: { terminate(): void }, req: FastifyRequest): void {
  if (err.code?.startsWith('WS_ERR_')) req.log.warn({ code: err.code, reason: err.message }, 'websocket closed: the client broke the protocol');
  else if (isClientAbort(err as FastifyError)) req.log.debug({ code: err.code, reason: err.message }, 'websocket client went away');
  else req.log.error({ err }, 'websocket error');
  socket.terminate();
}

/** The one place that maps error codes to HTTP answers. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (!(err instanceof EdgeplaneError) && isClientAbort(err)) {
      // The client went away mid-request (an aborted upload, a reset): its doing, and nobody reads the answer.
      req.log.debug({ code: err.code, reason: err.message }, 'client closed the connection before the request was complete');
      return reply.status(400).send(new EdgeplaneError('ValidationFailed', 'the client closed the connection before the request was complete').toBody());
    }
    const e = err instanceof EdgeplaneError ? err : fromFastify(err);
    if (e) {
      if (e.status >= 500) req.log.error({ err }, e.message);
      return reply.status(e.status).send(e.toBody());
    }
    req.log.error({ err }, 'unhandled error');
    const body: ErrorBody = { error: { code: 'Internal', message: `internal error (request ${req.id})` } };
    return reply.status(500).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const body: ErrorBody = { error: { code: 'NotFound', message: `no route ${req.method} ${req.url.split('?')[0]}` } };
    return reply.status(404).send(body);
  });
}
