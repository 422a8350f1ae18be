import { execFile, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { lstat, mkdir, readdir, realpath, rm, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { type ReadEntry, x } from 'tar';
import type { BlobStore } from './blob-store.js';
import { type Descriptor, type ImageManifest, MEDIA, OciError } from './types.js';

/**
 * Unpacks an image's layers, in order, into `target` (created empty). Layers are plain, gzip or
 * zstd tars (by their media type); OCI whiteouts are honoured: `.wh.<name>` deletes <name> from
 * lower layers and `.wh..wh..opq` empties its directory. Nothing is written outside `target`:
 * absolute entry paths and `..` are refused, and no entry is written through a symlink that leads out.
 *
 * The first layer goes into the empty directory with GNU tar when the machine has it (Edgeplane OS 2
 * does): node-tar costs about ten times its CPU (a 900 MiB OS 2 root filesystem: 23 s of CPU against
 * 2 s natively, and under QEMU's TCG every cycle costs 10-20 times more; see docs/os-images.md,
 * "Slot-fill time"). GNU tar's defaults are what this needs (tar 1.34, extract.c and names.c): a
 * leading `/` is removed from member and hard link names, a member whose name contains `..` is
 * skipped, and a symlink whose target is absolute or contains `..` is made only after the whole
 * archive, as an empty placeholder file until then, so no later member can be written through it
 * (that fails, "Not a directory", and the extraction fails). Its targets are kept exactly as they
 * are. `--numeric-owner` keeps the image's uids and gids (not the names of this machine's
 * /etc/passwd) and `--preserve-permissions` its modes (node-tar applied the umask: /tmp ended 1755).
 * Any error of tar fails the extraction. Later layers (into a tree that may hold symlinks out of the
 * root) and machines without GNU tar use node-tar as below.
 *
 * node-tar path: symlinks with an absolute target (a root filesystem has many: Debian's
 * /usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...) are kept as they are: node-tar
 * would strip the leading `/` (its preservePaths option would keep it, but also allow absolute
 * entry paths, `..` and writing through symlinks), which makes them point inside their own
 * directory and leaves a slot where no dynamically linked program runs. So they are taken out of
 * tar's hands and made after each layer, once their directory is known to be inside `target`.
 */
export async function extractImage(store: BlobStore, manifest: ImageManifest, target: string, signal?: AbortSignal): Promise<void> {
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  const root = resolve(target);
  for (const [index, layer] of manifest.layers.entries()) {
    signal?.throwIfAborted();
    if (index === 0 && (await hasGnuTar())) {
      await gnuTarExtract(store.path(layer.digest), layer, root, signal);
      continue;
    }
    // Entry path -> absolute target, in entry order; a later entry of the same path replaces it.
    const absoluteLinks = new Map<string, string>();
    const options: Parameters<typeof x>[0] = {
      cwd: root,
      // Whiteouts are applied while walking the tar (filter runs in entry order, before later entries are written).
      filter: (path, entry) => {
        const key = posix.normalize(path).replace(/^\/+/, '').replace(/\/+$/, '');
        absoluteLinks.delete(key);
        const link = entry as ReadEntry;
        if (link.type === 'SymbolicLink' && link.linkpath && isAbsolute(link.linkpath)) {
          absoluteLinks.set(key, link.linkpath);
          return false;
        }
        const name = basename(path);
        if (!name.startsWith('.wh.')) return true;
        const dir = resolve(root, dirname(path));
        if (relative(root, dir).startsWith('..')) return false;
        if (name === '.wh..wh..opq') {
          emptyDirSync(dir);
        } else {
          const victim = join(dir, name.slice(4));
          if (!relative(root, victim).startsWith('..')) rmSync(victim, { recursive: true, force: true });
        }
        return false;
      },
    };
    if (compression(layer) === 'zstd') await unpackStream(zstdStream(store.path(layer.digest), layer, signal), x(options) as unknown as NodeJS.WritableStream);
    else await x({ ...options, file: store.path(layer.digest) });
    const realRoot = await realpath(root);
    for (const [path, linkTarget] of absoluteLinks) await placeSymlink(realRoot, path, linkTarget, layer.digest);
  }
}

/** Makes `path` (relative to `root`) a symlink to `linkTarget`, refusing anything that would land outside `root`. */
async function placeSymlink(root: string, path: string, linkTarget: string, layer: string): Promise<void> {
  const refuse = (why: string) => {
    throw new OciError('LayerUnsafe', `layer ${layer}: symlink ${path} -> ${linkTarget}: ${why}`, false);
  };
  if (!path || path.split('/').includes('..')) refuse("its path contains '..'");
  const abs = join(root, path);
  await mkdir(dirname(abs), { recursive: true });
  // The directory it goes into, with every symlink on the way resolved, must still be inside root.
  const dir = await realpath(dirname(abs));
  if (dir !== root && !dir.startsWith(root + sep)) refuse('its directory resolves outside the image root');
  const at = join(dir, basename(abs));
  const existing = await lstat(at).catch(() => undefined);
  if (existing?.isDirectory()) refuse('a directory of the same name exists (the layer wrote beneath its own symlink)');
  if (existing) await unlink(at);
  await symlink(linkTarget, at);
}

function emptyDirSync(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

/** The media type's compression: zstd layers are decompressed by the zstd program (Node 20's zlib has no zstd). */
function compression(layer: Descriptor): 'gzip' | 'zstd' | 'none' {
  if (layer.mediaType === MEDIA.ociLayerZstd) return 'zstd';
  if (layer.mediaType === MEDIA.ociLayerGzip || layer.mediaType === MEDIA.dockerLayerGzip) return 'gzip';
  return 'none';
}

/** Feeds a tar stream to node-tar's unpacker; resolves once it wrote every entry ('close'). */
function unpackStream(source: Readable, unpack: NodeJS.WritableStream): Promise<void> {
  return new Promise((done, fail) => {
    unpack.on('close', () => done());
    unpack.on('error', fail);
    source.on('error', fail);
    source.pipe(unpack);
  });
}

/** A zstd layer decompressed by the zstd program. */
function zstdStream(file: string, layer: Descriptor, signal?: AbortSignal): Readable {
  const child = spawn('zstd', ['-dcq', file], { stdio: ['ignore', 'pipe', 'pipe'], signal });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-2000);
  });
  const failed = (why: string) => child.stdout.destroy(new OciError('LayerUnsafe', `layer ${layer.digest}: ${why}`));
  child.on('error', (err) => failed(`cannot run zstd (zstd layers need the zstd program): ${err.message}`));
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) failed(`zstd failed (exit ${code}): ${stderr.trim()}`);
  });
  return child.stdout;
}

let gnuTar: Promise<boolean> | undefined;

/** GNU tar 1.31 or later (--zstd) is on the PATH: Debian's, not busybox's. */
function hasGnuTar(): Promise<boolean> {
  gnuTar ??= new Promise((done) =>
    execFile('tar', ['--version'], { timeout: 10_000 }, (err, stdout) => {
      const m = /^tar \(GNU tar\) (\d+)\.(\d+)/.exec(String(stdout));
      done(!err && !!m && (Number(m[1]) > 1 || Number(m[2]) >= 31));
    }),
  );
  return gnuTar;
}

/** Extracts one layer into the empty directory `root` with GNU tar (see extractImage for the rules it keeps). */
async function gnuTarExtract(file: string, layer: Descriptor, root: string, signal?: AbortSignal): Promise<void> {
  if ((await readdir(root)).length > 0) throw new Error(`GNU tar extracts only into an empty directory; ${root} is not`);
  const kind = compression(layer);
  const args = [
    '--extract',
    `--file=${file}`,
    `--directory=${root}`,
    ...(kind === 'gzip' ? ['--gzip'] : kind === 'zstd' ? ['--zstd'] : []),
    '--numeric-owner',
    '--preserve-permissions',
    // Whiteouts have nothing to delete in the first layer; they are not files of the image.
    '--exclude=.wh.*',
    '--warning=no-unknown-keyword',
  ];
  await new Promise<void>((done, fail) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'], signal });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    child.on('error', fail);
    child.on('close', (code) => {
      if (code === 0) return done();
      const detail = stderr
        .split('\n')
        .filter((l) => l && !/Removing leading/.test(l))
        .slice(0, 8)
        .join('; ');
      fail(new OciError('LayerUnsafe', `layer ${layer.digest}: tar refused to extract it (exit ${code}): ${detail}`));
    });
  });
}
