#!/usr/bin/env node
// The workspace's `edgeplane` bin (node_modules/.bin/edgeplane, npx edgeplane): runs the bundle that
// `npm run build` writes to packages/cli/dist. Without a build, says how to make one rather than failing
// on a missing module. Installed packages point their bin at dist/bin.js directly.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write('edgeplane: the command is not built yet: run `npm run build` (or `npm run edgeplane -- ARGS` to run it from the sources)\n');
  process.exit(1);
}
await import(bundle.href);
