import { mkdirSync, rmSync } from 'node:fs';
import { lstat, mkdir, realpath, rm, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { type ReadEntry, x } from 'tar';
import type { BlobStore } from './blob-store.js';
import { type ImageManifest, OciError } from './types.js';

/**
 * Unpacks an image's layers, in order, into `target` (created empty). Layer tars are gzip or plain
 * (tar detects which); OCI whiteouts are honoured: `.wh.<name>` deletes <name> from lower layers and
 * `.wh..wh..opq` empties its directory. tar refuses absolute paths and `..` escapes, and never
 * writes through a symlink.
 *
 * Symlinks with an absolute target (a root filesystem has many: Debian's
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
  for (const layer of manifest.layers) {
    signal?.throwIfAborted();
    // Entry path -> absolute target, in entry order; a later entry of the same path replaces it.
    const absoluteLinks = new Map<string, string>();
    await x({
      file: store.path(layer.digest),
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
    });
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
