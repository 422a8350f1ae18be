import { execFile, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type BuiltImage, buildImage, type DiskLayout, defaultCacheDir } from '@edgeplane/image';
import { expect } from 'vitest';
import { cli } from '../support/cli-process.js';
import { pushOciLayout, type TestRegistry } from '../support/registry.js';
import type { TestServer } from '../support/server.js';
import type { LabVm } from './qemu.js';

/**
 * What the labs (Edgeplane OS 2 in os2-lab.test.ts, the busybox image in the installer, TPM and delta labs) share: reading
 * the device's disk file the way a technician with the disk in hand would, waiting on the VM, and
 * the control-plane side of OS updates (images pushed to the lab registry, the `lab-os` profile).
 */

// biome-ignore lint/suspicious/noExplicitAny: response bodies are JSON the assertions that read them check (as TestServer['api'])
type Json = any;

/** The API of the lab's control plane: the test server's helper, or a fetch trusting the run's CA. */
export type LabApi = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: Json }>;

/** The lab device's disk file, read in place (debugfs, mtools, sfdisk): what the agent and the boot loader wrote. */
export class LabDisk {
  constructor(
    readonly file: string,
    private readonly layout: () => DiskLayout | undefined,
    private readonly work: string,
  ) {}

  /** Byte offset of a partition. */
  offsetOf(name: string): number {
    return (this.layout()?.partitions.find((p) => p.name === name)?.startMiB ?? 0) * 1024 * 1024;
  }

  /** The slot record (usr/lib/edgeplane/slot.json) of a slot partition: squashfs (OS 2) or ext4 (the busybox image). */
  slotRecord(slot: 'root-a' | 'root-b' | 'recovery'): { digest: string } | undefined {
    const r = this.squashfs(slot)
      ? spawnSync('unsquashfs', ['-cat', this.squashfsImage(slot), 'usr/lib/edgeplane/slot.json'], { encoding: 'utf8' })
      : spawnSync('debugfs', ['-R', 'cat /usr/lib/edgeplane/slot.json', `${this.file}?offset=${this.offsetOf(slot)}`], { encoding: 'utf8' });
    try {
      return JSON.parse(r.stdout) as { digest: string };
    } catch {
      return undefined;
    }
  }

  /** Whether a partition starts with squashfs's superblock. */
  squashfs(name: string): boolean {
    return this.readAt(this.offsetOf(name), 4).toString() === 'hsqs';
  }

  /**
   * A squashfs partition copied out to a file (unsquashfs 4.5.1 reads no offset into a disk): as
   * many bytes as its superblock says it uses (bytes_used, at 40).
   */
  squashfsImage(name: string): string {
    const used = Number(this.readAt(this.offsetOf(name), 48).readBigUInt64LE(40));
    const file = join(this.work, `${name}.squashfs`);
    const fd = openSync(this.file, 'r');
    try {
      writeFileSync(file, this.readAt(this.offsetOf(name), used, fd));
    } finally {
      closeSync(fd);
    }
    return file;
  }

  private readAt(offset: number, length: number, fd?: number): Buffer {
    const own = fd ?? openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(length);
      readSync(own, buf, 0, length, offset);
      return buf;
    } finally {
      if (fd === undefined) closeSync(own);
    }
  }

  /** Whether any of the first 16 MiB of a slot partition is written (the fresh disk has zeros there). */
  async slotHasData(slot: 'root-a' | 'root-b'): Promise<boolean> {
    const fh = await open(this.file, 'r');
    try {
      const buf = Buffer.alloc(16 * 1024 * 1024);
      await fh.read(buf, 0, buf.length, this.offsetOf(slot));
      return buf.some((b) => b !== 0);
    } finally {
      await fh.close();
    }
  }

  /** The grubenv on the ESP (mtools reads the FAT partition in place). */
  grubenv(): Record<string, string> {
    const file = join(this.work, 'grubenv.read');
    rmSync(file, { force: true });
    const copied = spawnSync('mcopy', ['-n', '-i', `${this.file}@@${this.offsetOf('esp')}`, '::/EFI/edgeplane/grubenv', file], { encoding: 'utf8' });
    expect(copied.status, copied.stderr).toBe(0);
    const listed = spawnSync('grub-editenv', [file, 'list'], { encoding: 'utf8' }).stdout;
    return Object.fromEntries(
      listed
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  }

  /** A file on the data partition (debugfs), e.g. `agent/identity.json`; undefined when it is not there. */
  dataFile(path: string): string | undefined {
    const r = spawnSync('debugfs', ['-R', `cat /${path}`, `${this.file}?offset=${this.offsetOf('data')}`], { encoding: 'utf8' });
    return r.status === 0 && r.stdout ? r.stdout : undefined;
  }

  /** The GPT, read with sfdisk. */
  gpt(): { lastlba: number; sectorsize: number; partitions: { name: string; start: number; size: number }[] } {
    const r = spawnSync('sfdisk', ['--json', this.file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout).partitiontable;
  }

  /** Destroys the filesystems (their superblocks) of `slots`: GRUB can no longer load a kernel from them. */
  async destroy(slots: string[]): Promise<void> {
    const fh = await open(this.file, 'r+');
    try {
      for (const slot of slots) await fh.write(Buffer.alloc(1024 * 1024), 0, 1024 * 1024, this.offsetOf(slot));
    } finally {
      await fh.close();
    }
  }
}

/**
 * Waiting on a lab VM. `until` polls `fn` until it returns a value; it fails at once (with the serial
 * log) when QEMU died or the agent crash-loops, and at the deadline with `what`, the last error and
 * the end of the serial log.
 */
export function labWaits(vm: () => LabVm) {
  async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      vm().assertHealthy();
      const value = await Promise.resolve()
        .then(fn)
        .catch((err) => {
          last = err;
          return undefined;
        });
      if (value) return value;
      if (Date.now() > deadline)
        throw new Error(`${what}: not within ${timeoutMs / 1000} s${last ? ` (last error: ${last})` : ''}; serial log ends:\n${vm().serial().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  /** Waits for a line on the serial console of the current QEMU run. */
  const serialShows = (pattern: RegExp | string, timeoutMs: number) =>
    until(`serial console shows ${pattern}`, () => (typeof pattern === 'string' ? vm().serial().includes(pattern) : pattern.test(vm().serial())), timeoutMs);
  return { until, serialShows };
}

export interface LabImage {
  built: BuiltImage;
  /** The reference the guest pulls: the registry as the guest sees the host (10.0.2.2), pinned by digest. */
  ref: string;
  digest: string;
}

/** OS images in the lab registry and the `lab-os` cluster profile whose revision N+1 pins image N. */
export class LabFleet {
  readonly images: LabImage[] = [];
  /** The images published in the background, in call order (publishInBackground). */
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: LabApi,
    private readonly registry: TestRegistry,
    private readonly work: string,
  ) {}

  /** Builds an image (what `edgeplane image build` runs) and pushes it to the lab registry. */
  async publish(version: string, options: Partial<Parameters<typeof buildImage>[0]> = {}): Promise<void> {
    const built = await buildImage({ name: 'Edgeplane OS', version, output: join(this.work, `image-${version}`), ...options });
    const digest = await pushOciLayout(built.layoutDir, `${this.registry.host}/edgeplane/os:${version}`);
    expect(digest).toBe(built.digest);
    this.images.push({ built, ref: `10.0.2.2:${this.registry.host.split(':')[1]}/edgeplane/os:${version}@${digest}`, digest });
  }

  /**
   * Builds and pushes an image after those already queued, while the caller goes on (e.g. the device
   * boots); addProfileRevision of an image not yet published waits for the queue, and fails with a
   * build's error.
   */
  publishInBackground(version: string, options: Partial<Parameters<typeof buildImage>[0]> = {}): void {
    this.pending = this.pending.then(() => this.publish(version, options));
    this.pending.catch(() => undefined);
  }

  /** Adds the profile revision pinning image `index` (the first one creates the profile). */
  async addProfileRevision(index: number): Promise<void> {
    if (index >= this.images.length) await this.pending;
    const spec = { description: 'lab host OS', layers: { os: { image: this.images[index].ref, insecure: true } } };
    const r =
      index === 0
        ? await this.api('POST', '/api/v1/clusterprofiles', { metadata: { name: 'lab-os' }, spec })
        : await this.api('PUT', '/api/v1/clusterprofiles/lab-os', { metadata: { name: 'lab-os' }, spec });
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
  }

  /** Points the host's OS profile at `revision` of lab-os. */
  async assignRevision(hostName: string, revision: number): Promise<void> {
    const r = await this.api('PATCH', `/api/v1/edgehosts/${hostName}`, { spec: { osProfile: { name: 'lab-os', revision } } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  }

  async osStatus(hostName: string): Promise<Json> {
    return (await this.api('GET', `/api/v1/edgehosts/${hostName}`)).body.status?.os;
  }
}

/**
 * A registration token and the NoCloud seed ISO (`edgeplane installer seed-iso`) that registers a lab
 * device with it at the test server, as the guest sees the host (10.0.2.2).
 */
export async function labSeed(t: TestServer, work: string, name: string, spec: Record<string, unknown>): Promise<string> {
  const token = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec });
  expect(token.status, JSON.stringify(token.body)).toBe(201);
  const seed = join(work, `seed-${name}.iso`);
  const env = { EDGEPLANE_CONFIG: join(work, 'cli.yaml'), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
  const agentServer = `http://10.0.2.2:${new URL(t.url).port}`;
  const made = await cli(['installer', 'seed-iso', '--token', name, '--token-secret', token.body.status.token, '--agent-server', agentServer, '-o', seed], env);
  expect(made.code, made.out).toBe(0);
  return seed;
}

/**
 * The kernel package of `name` (in the image builder's cache) with its kernel's signature removed
 * (sbattach --remove), standing for a custom unsigned build: everything else, the modules included, is
 * the same build. Repacked with fast compression (the builder unpacks it with dpkg-deb -x).
 */
export async function unsignedKernelPackage(name: string, work: string): Promise<string> {
  const run = promisify(execFile);
  const deb = join(defaultCacheDir(), name);
  const dir = join(work, 'kernel-unsigned');
  await run('dpkg-deb', ['-R', deb, dir]);
  const vmlinuz = readdirSync(join(dir, 'boot')).find((f) => f.startsWith('vmlinuz-'))!;
  await run('sbattach', ['--remove', join(dir, 'boot', vmlinuz)]);
  const out = join(work, `unsigned-${name}`);
  await run('dpkg-deb', ['-Zgzip', '-z1', '-b', dir, out], { maxBuffer: 16 * 1024 * 1024 });
  rmSync(dir, { recursive: true, force: true });
  return out;
}
