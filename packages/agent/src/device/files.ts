import { lstat, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';

/** What `DeviceFiles.stat` tells about a device path. */
export interface DeviceFileStat {
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  /** Permission bits (e.g. 0o644). */
  mode: number;
}

/**
 * The files of a device, by device path: '/etc/rancher/k3s/config.yaml' (or 'etc/...') names the
 * same file on every device, whatever directory the device's files live under (`Device.root`). A
 * path that would leave the device's root ('..') is refused. Like flightctl's fileio module: every
 * manager's disk operation on the device goes through here.
 */
export interface DeviceFiles {
  /** The file's bytes; undefined when it does not exist (other errors reject). */
  read(path: string): Promise<Buffer | undefined>;
  /** The file as UTF-8 text; undefined when it does not exist (other errors reject). */
  readText(path: string): Promise<string | undefined>;
  /**
   * Replaces the file so that a crash leaves the old or the new content, never a torn file (temp
   * file, fsync, rename); parent directories are created. `mode` defaults to 0o600.
   */
  writeAtomic(path: string, data: string | Buffer, mode?: number): Promise<void>;
  /** Creates a directory and its parents. */
  mkdir(path: string, mode?: number): Promise<void>;
  /** Removes a file, or a directory with `recursive`; no error when it does not exist. */
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  /** Type, size and mode; undefined when it does not exist. A symlink is reported, not followed. */
  stat(path: string): Promise<DeviceFileStat | undefined>;
  /** Entry names of a directory, sorted; undefined when it does not exist or is not a directory. */
  list(path: string): Promise<string[] | undefined>;
}

/** Where a device path is on the machine running the agent: under `root`, never outside it. */
export function resolveDevicePath(root: string, path: string): string {
  const rel = normalize(isAbsolute(path) ? path.slice(1) : path);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) throw new Error(`device path ${path} leaves the device's root`);
  return join(root, rel);
}

/** DeviceFiles over a directory tree ('/' on a real machine, the sandbox directory of a simulated one). */
export class RootedFiles implements DeviceFiles {
  constructor(private readonly root: string) {}

  private at(path: string): string {
    return resolveDevicePath(this.root, path);
  }

  async read(path: string): Promise<Buffer | undefined> {
    return readFile(this.at(path)).catch(missing);
  }

  async readText(path: string): Promise<string | undefined> {
    return readFile(this.at(path), 'utf8').catch(missing);
  }

  async writeAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
    return writeFileAtomic(this.at(path), data, mode);
  }

  async mkdir(path: string, mode = 0o755): Promise<void> {
    await mkdir(this.at(path), { recursive: true, mode });
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    return rm(this.at(path), { recursive: options.recursive ?? false, force: true });
  }

  async stat(path: string): Promise<DeviceFileStat | undefined> {
    const st = await lstat(this.at(path)).catch(missing);
    if (!st) return undefined;
    const type = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
    return { type, size: st.size, mode: st.mode & 0o7777 };
  }

  async list(path: string): Promise<string[] | undefined> {
    try {
      return (await readdir(this.at(path))).sort();
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw err;
    }
  }
}

/** undefined for a path that does not exist; any other error is rethrown. */
function missing(err: NodeJS.ErrnoException): undefined {
  if (err.code === 'ENOENT') return undefined;
  throw err;
}
