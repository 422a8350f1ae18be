import { CONTROL_CHARS_MESSAGE, EdgeplaneError, findControlChars, findTooDeep, JSON_DEPTH_MESSAGE, TEXT_CONTROL_CHARS_MESSAGE } from '@edgeplane/protocol';
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

/**
 * The API's JSON body parser (also for merge patches). An empty body means "no body" (a bare `POST
 * .../approve` from curl), not malformed JSON. A body nested deeper than MAX_JSON_DEPTH is refused
 * here, before anything walks it: V8's JSON.parse is iterative, but a reviver, the schemas and the
 * stores' JSON functions are not. `__proto__` keys are dropped so no later spread or merge can reach
 * a prototype; that walk is bounded by the same limit.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new EdgeplaneError('MalformedJson', `malformed JSON: ${(err as Error).message}`);
  }
  const deep = findTooDeep(value);
  if (deep) throw refuse('request', deep, JSON_DEPTH_MESSAGE);
  dropProtoKeys(value);
  return value;
}

function dropProtoKeys(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  if (!Array.isArray(value) && Object.hasOwn(value, '__proto__')) delete (value as Record<string, unknown>).__proto__;
  for (const v of Object.values(value)) dropProtoKeys(v);
}
