import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { c } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore, sha256Digest } from './blob-store.js';
import { extractImage } from './extract.js';
import type { ImageManifest } from './types.js';

let dir: string;
let store: BlobStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ep-extract-'));
  store = new BlobStore(join(dir, 'blobs'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A layer tar of the tree `build` makes (real files and symlinks, written by node-tar as they are). */
async function layer(name: string, build: (tree: string) => Promise<void>, entries = ['.']): Promise<ImageManifest['layers'][number]> {
  const tree = join(dir, `tree-${name}`);
  await mkdir(tree, { recursive: true });
  await build(tree);
  const file = join(dir, `${name}.tar`);
  await c({ file, cwd: tree, portable: true }, entries);
  const bytes = await readFile(file);
  const digest = sha256Digest(bytes);
  await store.put(digest, bytes);
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: bytes.length };
}
const manifest = (layers: ImageManifest['layers']): ImageManifest =>
  ({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: layers[0], layers }) as ImageManifest;

describe('extracting image layers', () => {
  it('keeps absolute symlink targets as they are (a root filesystem relies on them), relative ones too', async () => {
    const l = await layer('abs', async (t) => {
      await mkdir(join(t, 'usr/lib64'), { recursive: true });
      await mkdir(join(t, 'usr/lib/x86_64-linux-gnu'), { recursive: true });
      await writeFile(join(t, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), 'loader');
      await symlink('usr/lib', join(t, 'lib'));
      await symlink('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', join(t, 'usr/lib64/ld-linux-x86-64.so.2'));
      await symlink('/etc/alternatives/awk', join(t, 'usr/awk'));
    });
    const out = join(dir, 'out-abs');
    await extractImage(store, manifest([l]), out);
    expect(await readlink(join(out, 'usr/lib64/ld-linux-x86-64.so.2'))).toBe('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    expect(await readlink(join(out, 'usr/awk'))).toBe('/etc/alternatives/awk');
    expect(await readlink(join(out, 'lib'))).toBe('usr/lib');
    expect(await readFile(join(out, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), 'utf8')).toBe('loader');
  });

  it('a later layer replaces an absolute symlink, and a whiteout removes one', async () => {
    const lower = await layer('lower', async (t) => {
      await mkdir(join(t, 'etc'), { recursive: true });
      await symlink('/run/resolv.conf', join(t, 'etc/resolv.conf'));
      await symlink('/usr/share/zoneinfo/UTC', join(t, 'etc/localtime'));
    });
    const upper = await layer('upper', async (t) => {
      await mkdir(join(t, 'etc'), { recursive: true });
      await writeFile(join(t, 'etc/resolv.conf'), 'nameserver 10.0.2.3\n');
      await writeFile(join(t, 'etc/.wh.localtime'), '');
    });
    const out = join(dir, 'out-layers');
    await extractImage(store, manifest([lower, upper]), out);
    expect((await lstat(join(out, 'etc/resolv.conf'))).isFile()).toBe(true);
    expect(await readFile(join(out, 'etc/resolv.conf'), 'utf8')).toBe('nameserver 10.0.2.3\n');
    expect(existsSync(join(out, 'etc/localtime'))).toBe(false);
    expect(await lstat(join(out, 'etc/localtime')).catch(() => 'gone')).toBe('gone');
  });

  it('refuses to place a symlink through a directory that resolves outside the root, and writes nothing there', async () => {
    const outside = join(dir, 'outside');
    await mkdir(outside, { recursive: true });
    // Layer 1: `escape` is an absolute symlink to a directory outside the root (a valid link in the image).
    const first = await layer('escape1', async (t) => {
      await symlink(outside, join(t, 'escape'));
    });
    // Layer 2: an absolute symlink *beneath* it (no directory entry of its own), which would be
    // created in `outside` if the path were followed.
    const second = await layer(
      'escape2',
      async (t) => {
        await mkdir(join(t, 'escape'), { recursive: true });
        await symlink('/etc/shadow', join(t, 'escape/evil'));
      },
      ['escape/evil'],
    );
    const out = join(dir, 'out-escape');
    await expect(extractImage(store, manifest([first, second]), out)).rejects.toMatchObject({ code: 'LayerUnsafe' });
    expect(existsSync(join(outside, 'evil'))).toBe(false);
    expect(await lstat(join(outside, 'evil')).catch(() => 'absent')).toBe('absent');
  });
});
