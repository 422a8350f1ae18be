import { CONTROL_CHARS_MESSAGE, EdgeplaneError, findControlChars, TEXT_CONTROL_CHARS_MESSAGE } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';

const refuse = (where: string, path: (string | number)[], message: string) => {
  const p = path.map(String).join('.');
  return new EdgeplaneError('ValidationFailed', `invalid ${where}: ${p || '(root)'}: ${message}`, { issues: [{ path: p, message }] });
};

/** Throws ValidationFailed when a URL parameter, query value or JSON body string holds a control character. */
export function checkControlChars(req: FastifyRequest): void {
  // URL parts are names, selectors and tokens: no control character belongs in them.
  const param = findControlChars(req.params ?? {}, { plain: true });
  if (param) throw refuse('URL', param, CONTROL_CHARS_MESSAGE);
  const query = findControlChars(req.query ?? {}, { plain: true });
  if (query) throw refuse('query', query, CONTROL_CHARS_MESSAGE);
  // Bodies carry free text (reasons, descriptions, annotations): tab, newline and CR may stay.
  const body = findControlChars(req.body);
  if (body) throw refuse('request', body, TEXT_CONTROL_CHARS_MESSAGE);
}

/**
 * Refuses control characters (NUL and the rest of C0, and DEL) in every route's path parameters,
 * query string and JSON body before any handler runs. Hand-written as one root hook rather than a
 * schema per route: most routes read their parameters raw (names go straight to the store), and
 * PostgreSQL refuses NUL in text where SQLite stores it, so a per-route omission used to be a 500 on
 * one store and a 404 on the other. The zod schemas in @edgeplane/protocol apply the same rule to
 * messages that do not come over HTTP (the agent channel). Runs at preValidation: after
 * authentication (an anonymous caller still gets 401) and body parsing, before the handler.
 * Must be installed on the root instance before the route plugins are registered.
 */
export function installInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (req) => checkControlChars(req));
}
