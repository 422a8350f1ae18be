import { access, chmod, copyFile, mkdir, realpath, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ImageBuildError, runTool, which } from './tools.js';

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

  /**
   * tpm2-tools for the agent's TPM-bound identity (packages/agent/src/identity/tpm-key.ts): the
   * multi-call `tpm2` program at /bin/tpm2 with a `tpm2_<command>` link per command the agent runs
   * (as Debian's tpm2-tools 5.4 links them in /usr/bin), its tpm2-tss libraries, and the device TCTI.
   * libtss2-tctildr loads a TCTI with dlopen() by name when a tool starts (`--tcti=device:...` opens
   * libtss2-tcti-device.so.0: tpm2-tss 3.2 src/tss2-tcti/tctildr-dl.c), so `ldd` does not list it and
   * it is copied here beside tctildr. Needs the builder host's `tpm2-tools`.
   */
  async addTpm2Tools(): Promise<void> {
    const tpm2 = await which('tpm2').catch(() => {
      throw new ImageBuildError('ImageToolMissing', 'image build needs tpm2 (Debian: apt-get install tpm2-tools)');
    });
    await this.add(tpm2, 'bin/tpm2');
    for (const command of TPM2_COMMANDS) await symlink('tpm2', join(this.tree, 'bin', command));
    const loader = (await sharedLibraries(tpm2)).find((l) => /\/libtss2-tctildr\.so\.\d+$/.test(l));
    if (!loader) throw new ImageBuildError('ImageBuildFailed', `${tpm2} does not link libtss2-tctildr: not the tpm2-tools the agent drives`);
    for (const tcti of TPM2_TCTIS) {
      const lib = join(dirname(loader), tcti);
      await access(lib).catch(() => {
        throw new ImageBuildError('ImageToolMissing', `image build needs ${lib} (Debian: apt-get install ${tcti.replace(/\.so\.(\d+)$/, '$1')})`);
      });
      await this.add(lib, lib);
    }
  }

  private async copy(from: string, to: string, mode: number): Promise<void> {
    const target = join(this.tree, to);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(await realpath(from), target);
    await chmod(target, mode);
  }
}

/** The tpm2-tools commands the agent runs (identity/tpm-key.ts): each a link to the multi-call `tpm2`. */
export const TPM2_COMMANDS = [
  'tpm2_activatecredential',
  'tpm2_create',
  'tpm2_createek',
  'tpm2_createprimary',
  'tpm2_flushcontext',
  'tpm2_getcap',
  'tpm2_load',
  'tpm2_nvread',
  'tpm2_policysecret',
  'tpm2_readpublic',
  'tpm2_sign',
  'tpm2_startauthsession',
];

/** The TCTI the agent names (`device:/dev/tpmrm0`, `device:/dev/tpm0`): the kernel's TPM character devices, no tpm2-abrmd. */
export const TPM2_TCTIS = ['libtss2-tcti-device.so.0'];

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
