import { chmod, copyFile, mkdir, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runTool } from './tools.js';

/**
 * Copies host programs into an image tree together with the shared libraries `ldd` lists, at the
 * same paths (and the dynamic loader at its /lib64 path), so they run in the image without a
 * package manager. The builder runs on Debian, so the libraries are Debian's.
 */
export class HostBinaries {
  private readonly copied = new Set<string>();

  constructor(private readonly tree: string) {}

  /** Copies `hostPath` to `dest` (a path inside the tree) and the libraries it needs. */
  async add(hostPath: string, dest: string): Promise<void> {
    await this.copy(hostPath, dest, 0o755);
    for (const lib of await sharedLibraries(hostPath)) {
      if (this.copied.has(lib)) continue;
      this.copied.add(lib);
      await this.copy(lib, lib, 0o755);
    }
  }

  private async copy(from: string, to: string, mode: number): Promise<void> {
    const target = join(this.tree, to);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(await realpath(from), target);
    await chmod(target, mode);
  }
}

/** Absolute paths of the shared libraries (and loader) a dynamically linked program loads. */
export async function sharedLibraries(program: string): Promise<string[]> {
  let stdout: string;
  try {
    stdout = (await runTool('ldd', [program])).stdout;
  } catch (err) {
    if (/not a dynamic executable/.test((err as Error).message)) return [];
    throw err;
  }
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s*\(/.exec(line);
    if (m) libs.push(m[1]);
  }
  return libs;
}
