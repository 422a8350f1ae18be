import { parse } from 'node:querystring';

/**
 * Fastify's query-string parser (routerOptions.querystringParser). The default one turns a repeated
 * key (`?ticket=a&ticket=b`) into an array, while every handler reads query values as strings: an
 * array reached `.split()` or a hash function and answered 500. Here the first value of a repeated
 * key wins, as in Kubernetes (Go's url.Values.Get), so `req.query` only ever holds strings.
 * Must not throw: it runs inside the router, before any error handler.
 */
export function parseQueryString(query: string): Record<string, string> {
  const parsed = parse(query) as Record<string, string | string[]>;
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(parsed)) out[k] = Array.isArray(v) ? (v[0] ?? '') : v;
  return out;
}
