import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
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
/**
 * A layer made by GNU tar from `members` of `tree` (in that order), compressed as `compress` says;
 * `transform` (tar --transform, with --absolute-names) renames members the way a hostile image
 * would: `..` and absolute names, a file beneath a symlink.
 */
async function gnuLayer(
  name: string,
  build: (tree: string) => Promise<void>,
  members: string[],
  compress: 'none' | 'gzip' | 'zstd',
  transform: string[] = [],
): Promise<ImageManifest['layers'][number]> {
  const tree = join(dir, `gtree-${name}`);
  await mkdir(tree, { recursive: true });
  await build(tree);
  const file = join(dir, `${name}.layer`);
  const flag = { none: [], gzip: ['--gzip'], zstd: ['--zstd'] }[compress];
  execFileSync('tar', [
    '--create',
    '--absolute-names',
    '--numeric-owner',
    ...flag,
    ...transform.map((t) => `--transform=${t}`),
    '-f',
    file,
    '-C',
    tree,
    ...members,
  ]);
  const bytes = await readFile(file);
  const digest = sha256Digest(bytes);
  await store.put(digest, bytes);
  const mediaType = {
    none: 'application/vnd.oci.image.layer.v1.tar',
    gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  }[compress];
  return { mediaType, digest, size: bytes.length };
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

  it.each(['none', 'gzip', 'zstd'] as const)(
    'unpacks a %s layer with its modes and numeric owners (sticky /tmp, setuid, a uid this machine has no name for)',
    async (compress) => {
      const l = await gnuLayer(
        `modes-${compress}`,
        async (t) => {
          await mkdir(join(t, 'tmp'), { recursive: true });
          await chmod(join(t, 'tmp'), 0o1777);
          await mkdir(join(t, 'usr/bin'), { recursive: true });
          await writeFile(join(t, 'usr/bin/su'), 'su');
          await chmod(join(t, 'usr/bin/su'), 0o4755);
          await writeFile(join(t, 'usr/bin/chrony-owned'), 'x');
          await chown(join(t, 'usr/bin/chrony-owned'), 4242, 4243);
          await symlink('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', join(t, 'usr/bin/ld'));
        },
        ['.'],
        compress,
      );
      const out = join(dir, `out-modes-${compress}`);
      await extractImage(store, manifest([l]), out);
      expect((await stat(join(out, 'tmp'))).mode & 0o7777).toBe(0o1777);
      expect((await stat(join(out, 'usr/bin/su'))).mode & 0o7777).toBe(0o4755);
      expect(await stat(join(out, 'usr/bin/chrony-owned'))).toMatchObject({ uid: 4242, gid: 4243 });
      expect(await readlink(join(out, 'usr/bin/ld'))).toBe('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    },
  );

  it('a zstd layer above another one (node-tar, honouring its whiteout)', async () => {
    const lower = await gnuLayer(
      'zlower',
      async (t) => {
        await mkdir(join(t, 'etc'), { recursive: true });
        await writeFile(join(t, 'etc/old'), 'old');
      },
      ['.'],
      'gzip',
    );
    const upper = await gnuLayer(
      'zupper',
      async (t) => {
        await mkdir(join(t, 'etc'), { recursive: true });
        await writeFile(join(t, 'etc/.wh.old'), '');
        await writeFile(join(t, 'etc/new'), 'new');
      },
      ['.'],
      'zstd',
    );
    const out = join(dir, 'out-zstd-layers');
    await extractImage(store, manifest([lower, upper]), out);
    expect(await readdir(join(out, 'etc'))).toEqual(['new']);
  });

  it('refuses a layer that writes through its own symlink out of the root or names .., and writes nothing outside', async () => {
    const outside = join(dir, 'outside-gnu');
    await mkdir(outside, { recursive: true });
    const hostile = [
      // `esc` -> a directory outside, then a file member beneath it.
      { name: 'through-abs', members: ['esc', 'd/f'], transform: ['s,^d/f$,esc/f,'] },
      // A relative symlink with .. out of the root, then a file beneath it.
      { name: 'through-rel', members: ['rel', 'd/f'], transform: ['s,^d/f$,rel/f,'] },
      // A member named ../outside-gnu/f.
      { name: 'dotdot', members: ['d/f'], transform: ['s,^d/f$,../outside-gnu/f,'] },
      // A hard link through the symlink to a file outside.
      { name: 'hardlink', members: ['esc', 'd/f', 'd/h'], transform: ['s,^d/f$,esc/victim,', 's,^d/h$,h,'] },
    ];
    for (const h of hostile) {
      const l = await gnuLayer(
        `hostile-${h.name}`,
        async (t) => {
          await mkdir(join(t, 'd'), { recursive: true });
          await writeFile(join(t, 'd/f'), 'written through');
          await symlink(outside, join(t, 'esc'));
          await symlink('../outside-gnu', join(t, 'rel'));
          execFileSync('ln', [join(t, 'd/f'), join(t, 'd/h')]);
        },
        h.members,
        'gzip',
        h.transform,
      );
      const out = join(dir, 'root-gnu', h.name);
      await expect(extractImage(store, manifest([l]), out), h.name).rejects.toMatchObject({ code: 'LayerUnsafe' });
      expect(await readdir(outside), h.name).toEqual([]);
    }
  });

  it('an absolute member name lands inside the root, as tar strips its leading /', async () => {
    const outside = join(dir, 'outside-abs');
    await mkdir(outside, { recursive: true });
    const l = await gnuLayer(
      'absolute-name',
      async (t) => {
        await mkdir(join(t, 'd'), { recursive: true });
        await writeFile(join(t, 'd/f'), 'inside');
      },
      ['d/f'],
      'none',
      [`s,^d/f$,${outside}/f,`],
    );
    const out = join(dir, 'out-absolute-name');
    await extractImage(store, manifest([l]), out);
    expect(await readdir(outside)).toEqual([]);
    expect(await readFile(join(out, outside, 'f'), 'utf8')).toBe('inside');
  });
});
