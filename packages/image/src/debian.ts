import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CACHE_KEEP, pruneCache, touchEntry } from './cache.js';
import { FILES_DIR } from './initramfs.js';
import { ImageBuildError, runTool, which } from './tools.js';

/** The default package list of Edgeplane OS 2 (`--packages FILE` replaces it). */
export const DEFAULT_PACKAGES_FILE = join(FILES_DIR, 'packages.txt');
export const DEFAULT_SUITE = 'bookworm';
/** Archive components the root filesystem takes packages from: firmware lives in non-free-firmware. */
export const DEFAULT_COMPONENTS = ['main', 'non-free-firmware'];
/** SOURCE_DATE_EPOCH when the environment sets none (2026-01-01T00:00:00Z): every timestamp in the image. */
export const DEFAULT_SOURCE_DATE_EPOCH = 1767225600;

/**
 * Where builds are cached: EDGEPLANE_IMAGE_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/edgeplane/image.
 * Outside any checkout, so a fresh clone (CI) reuses what an earlier build on the machine made.
 */
export function defaultCacheDir(): string {
  if (process.env.EDGEPLANE_IMAGE_CACHE) return process.env.EDGEPLANE_IMAGE_CACHE;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'edgeplane/image');
}

export function sourceDateEpoch(): number {
  const env = Number(process.env.SOURCE_DATE_EPOCH);
  return Number.isInteger(env) && env > 0 ? env : DEFAULT_SOURCE_DATE_EPOCH;
}

/** A package list file: one name per line, `#` comments. */
export async function readPackageList(file = DEFAULT_PACKAGES_FILE): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ImageBuildError('ImageBuildFailed', `cannot read the package list ${file}: ${(err as Error).message}`);
  }
  const names = text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
  for (const name of names)
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(name)) throw new ImageBuildError('ImageBuildFailed', `package list ${file}: "${name}" is not a Debian package name`);
  if (!names.length) throw new ImageBuildError('ImageBuildFailed', `package list ${file} names no package`);
  return names;
}

/**
 * The build host's apt sources for `suite` (the files under /etc/apt that name it), read at build time
 * so no mirror is written into the builder, with `components` on each entry. Third-party
 * repositories for other suites (e.g. a Node.js repository) are not taken.
 */
export async function hostSources(suite: string, components: string[], etc = '/etc/apt'): Promise<{ name: string; text: string }[]> {
  const files: string[] = [];
  if (await stat(join(etc, 'sources.list')).catch(() => undefined)) files.push(join(etc, 'sources.list'));
  const dir = join(etc, 'sources.list.d');
  for (const n of (await readdir(dir).catch(() => [] as string[])).sort()) if (/\.(list|sources)$/.test(n)) files.push(join(dir, n));
  const out: { name: string; text: string }[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    const deb822 = file.endsWith('.sources');
    const entries = deb822 ? text.split(/\n\s*\n/) : text.split('\n');
    const kept = entries
      .filter((e) => !/^\s*#/.test(e) || deb822)
      .filter((e) =>
        deb822 ? new RegExp(`^Suites:.*\\b${suite}\\b`, 'm').test(e) && /^Types:.*\bdeb\b/m.test(e) : new RegExp(`^deb\\s.*\\s${suite}\\S*\\s`).test(e),
      )
      .map((e) => (deb822 ? e.replace(/^Components:.*$/m, `Components: ${components.join(' ')}`) : withComponents(e, components)));
    if (kept.length) out.push({ name: file.endsWith('.sources') ? 'edgeplane.sources' : 'edgeplane.list', text: `${kept.join(deb822 ? '\n\n' : '\n')}\n` });
  }
  if (!out.length)
    throw new ImageBuildError(
      'ImageBuildFailed',
      `no apt source for ${suite} on this machine (${etc}/sources.list*): the root filesystem comes from the configured Debian mirror`,
    );
  return out;
}

function withComponents(line: string, components: string[]): string {
  const m = /^(deb\s+(?:\[[^\]]*\]\s+)?\S+\s+\S+)/.exec(line);
  return m ? `${m[1]} ${components.join(' ')}` : line;
}

export interface DebianBaseOptions {
  packages: string[];
  suite?: string;
  components?: string[];
  cacheDir?: string;
  /** Build the base again even when the cache has it (e.g. to pick up the mirror's updates). */
  refresh?: boolean;
  onLog?: (line: string) => void;
}

export interface DebianBase {
  /** mmdebstrap's tarball of the root filesystem. */
  tar: string;
  /** Hash of every input of the base (package list, sources, suite, epoch, mmdebstrap version, hooks). */
  key: string;
  cached: boolean;
  packages: string[];
}

// What dpkg leaves out of the root filesystem: documentation (but each package's copyright), man
// and info pages, translations. See dpkg.cfg(5) path-exclude/path-include.
const DPKG_OPTS = [
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
  'path-exclude=/usr/share/lintian/*',
];

// Run in the finished chroot (mmdebstrap --customize-hook, "$1" is its root): drops the build's own
// traces and the state only a package manager needs. The initrd Debian's kernel package generated is
// replaced by the builder's own (files/os2/initramfs-init); the host's resolv.conf and hostname,
// which mmdebstrap copies in for the install, do not belong on a device.
const CUSTOMIZE_HOOK = [
  'rm -f "$1"/boot/initrd.img* "$1"/initrd.img* "$1"/etc/resolv.conf "$1"/etc/hostname',
  'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old',
  'rm -rf "$1"/var/log/* "$1"/var/cache/ldconfig/aux-cache "$1"/tmp/* "$1"/var/tmp/*',
  ': > "$1"/etc/machine-id',
].join(' && ');

/**
 * The Debian part of the root filesystem: `mmdebstrap --variant=minbase` of `packages` from the host's
 * sources, as a tarball in the cache keyed by the hash of its inputs. mmdebstrap honours
 * SOURCE_DATE_EPOCH, so two builds from the same packages are the same bytes.
 */
export async function debianBase(options: DebianBaseOptions): Promise<DebianBase> {
  const suite = options.suite ?? DEFAULT_SUITE;
  const components = options.components ?? DEFAULT_COMPONENTS;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const mmdebstrap = await which('mmdebstrap');
  const { stdout: version } = await runTool(mmdebstrap, ['--version']);
  const sources = await hostSources(suite, components);
  const epoch = sourceDateEpoch();
  const packages = [...new Set(options.packages)].sort();
  const key = createHash('sha256')
    .update(JSON.stringify({ v: 1, suite, packages, sources, epoch, mmdebstrap: version.trim(), dpkg: DPKG_OPTS, hook: CUSTOMIZE_HOOK }))
    .digest('hex');
  const dir = join(cacheDir, 'debian');
  const tar = join(dir, `${key}.tar`);
  if (!options.refresh && (await stat(tar).catch(() => undefined))) {
    await touchEntry(tar);
    return { tar, key, cached: true, packages };
  }

  await mkdir(dir, { recursive: true });
  // One mmdebstrap per base at a time on a machine: a second build of the same inputs (another
  // test, CI next to a developer) waits for the first one's tarball instead of running its own.
  const lock = `${tar}.lock`;
  while (!(await takeLock(lock))) {
    if (!options.refresh && (await stat(tar).catch(() => undefined))) return { tar, key, cached: true, packages };
    await new Promise((r) => setTimeout(r, 5000));
  }
  const tmp = await mkdtemp(join(dir, '.build-'));
  try {
    const sourceFiles: string[] = [];
    for (const [i, s] of sources.entries()) {
      const file = join(tmp, `${i}-${s.name}`);
      await writeFile(file, s.text);
      sourceFiles.push(file);
    }
    const args = [
      '--variant=minbase',
      '--format=tar',
      `--include=${packages.join(',')}`,
      ...DPKG_OPTS.map((o) => `--dpkgopt=${o}`),
      `--customize-hook=${CUSTOMIZE_HOOK}`,
      suite,
      join(tmp, 'base.tar'),
      ...sourceFiles,
    ];
    await runMmdebstrap(mmdebstrap, args, epoch, options.onLog);
    await rename(join(tmp, 'base.tar'), tar);
    await pruneCache(dir, CACHE_KEEP.debian, ['.tar']);
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await rm(lock, { force: true });
  }
  return { tar, key, cached: false, packages };
}

/** Creates `lock` holding this process id; false while another live process holds it (a dead holder's lock is taken over). */
async function takeLock(lock: string): Promise<boolean> {
  try {
    await writeFile(lock, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = Number(await readFile(lock, 'utf8').catch(() => ''));
  let alive = false;
  try {
    if (holder > 0) process.kill(holder, 0);
    alive = holder > 0;
  } catch {
    alive = false;
  }
  if (alive) return false;
  await rm(lock, { force: true });
  return takeLock(lock);
}

function runMmdebstrap(mmdebstrap: string, args: string[], epoch: number, onLog?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(mmdebstrap, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch), LC_ALL: 'C.UTF-8' },
    });
    let tail = '';
    const onData = (d: Buffer) => {
      const text = d.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) onLog?.(line);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(
            new ImageBuildError('ImageBuildFailed', `mmdebstrap failed (exit ${code}); its last output:\n${tail.trim().split('\n').slice(-15).join('\n')}`),
          ),
    );
  });
}
