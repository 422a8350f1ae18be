// Module hooks of module-log.mjs (they run on the loader thread, where process.env is a copy).
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (process.env.EDGEPLANE_MODULE_LOG) appendFileSync(process.env.EDGEPLANE_MODULE_LOG, `${result.url}\n`);
  return result;
}
