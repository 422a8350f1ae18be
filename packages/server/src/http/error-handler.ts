import { EdgeplaneError, type ErrorBody } from '@edgeplane/protocol';
import type { FastifyError, FastifyInstance } from 'fastify';

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
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message)))
    return new EdgeplaneError('MalformedJson', `malformed JSON: ${err.message}`);
  return undefined;
}

/** The one place that maps error codes to HTTP answers. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
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
