import { mkdirSync, rmSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { x } from 'tar';
import type { BlobStore } from './blob-store.js';
import type { ImageManifest } from './types.js';

/**
 * Unpacks an image's layers, in order, into `target` (created empty). Layer tars are gzip or plain
 * (tar detects which); OCI whiteouts are honoured: `.wh.<name>` deletes <name> from lower layers and
 * `.wh..wh..opq` empties its directory. tar refuses absolute paths and `..` escapes.
 */
export async function extractImage(store: BlobStore, manifest: ImageManifest, target: string, signal?: AbortSignal): Promise<void> {
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  const root = resolve(target);
  for (const layer of manifest.layers) {
    signal?.throwIfAborted();
    await x({
      file: store.path(layer.digest),
      cwd: root,
      // Whiteouts are applied while walking the tar (filter runs in entry order, before later entries are written).
      filter: (path) => {
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
  }
}

function emptyDirSync(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}
