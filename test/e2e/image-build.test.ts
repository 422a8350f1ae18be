// biome-ignore-all lint/suspicious/noTemplateCurlyInString: GRUB script text, ${...} is GRUB syntax, not a JS placeholder
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';

const run = promisify(execFile);
const sh = async (cmd: string, args: string[]) => (await run(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 })).stdout;

const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const CHECK = { name: 'agent-alive', type: 'command', command: ['/bin/true'], timeoutSeconds: 5, retries: 2 };

interface SfdiskPartition {
  start: number;
  size: number;
  type: string;
  name: string;
}

/**
 * `edgeplane image build --base busybox` as a user runs it (the small busybox image: seconds to
 * build; Edgeplane OS 2, the Debian default, is image-build-os2.test.ts): one real build (kernel from the cached Debian
 * package, busybox initramfs, Node and the agent, OCI layout, installer disk) pushed to a real
 * registry, then every output checked with the real tools a device or an operator would use.
 */
describe('edgeplane image build', () => {
  let dir: string;
  let out: string;
  let registry: TestRegistry;
  let result: { code: number | null; out: string; stdout: string };
  let digest: string;
  let partitions: SfdiskPartition[];
  const disk = () => join(out, 'disk.img');
  /** e2fsprogs and mtools open a partition in place: `disk.img?offset=N` / `disk.img@@N` (no dd copy of 512 MiB). */
  const offsetOf = (name: string) => partitions.find((p) => p.name === name)!.start * 512;
  const rootA = () => `${disk()}?offset=${offsetOf('root-a')}`;
  const esp = () => `${disk()}@@${offsetOf('esp')}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-image-build-'));
    out = join(dir, 'out');
    registry = await startRegistry();
    result = await cli([
      'image',
      'build',
      '--base',
      'busybox',
      '--version',
      '1.2.3',
      '--disk',
      '-o',
      out,
      '--health-check',
      JSON.stringify(CHECK),
      '--push',
      `${registry.host}/edgeplane/os:1.2.3`,
      '--insecure',
    ]);
    digest = /digest:\s+(sha256:[a-f0-9]{64})/.exec(result.stdout)?.[1] ?? '';
    if (result.code === 0) partitions = JSON.parse(await sh('sfdisk', ['--json', disk()])).partitiontable.partitions;
  }, 180_000);

  afterAll(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('builds, pushes, and prints a summary with the manifest digest', () => {
    expect(result.code, result.out).toBe(0);
    expect(digest).not.toBe('');
    expect(result.stdout).toContain('Built Edgeplane OS 1.2.3 (kernel ');
    expect(result.stdout).toContain(`pushed:    ${registry.host}/edgeplane/os:1.2.3 (${digest})`);
    // Step progress goes to stderr, one line per step off a terminal.
    expect(result.out).toContain('0/7 kernel');
    expect(result.out).toContain('6/7 disk');
  });

  it('writes a GPT disk with esp, root-a, root-b, data and recovery', () => {
    expect(partitions.map((p) => [p.name, p.type, p.size / 2048])).toEqual([
      ['esp', ESP_TYPE, 64],
      ['root-a', LINUX_TYPE, 512],
      ['root-b', LINUX_TYPE, 512],
      ['data', LINUX_TYPE, 1024],
      ['recovery', LINUX_TYPE, 512],
    ]);
  });

  it('puts GRUB at the removable-media path, grub.cfg and a grubenv committing slot A on the ESP', async () => {
    const boot = await sh('mdir', ['-b', '-i', esp(), '::/EFI/BOOT']);
    expect(boot).toContain('::/EFI/BOOT/BOOTX64.EFI');
    const local = join(dir, 'esp');
    await mkdir(local);
    for (const f of ['EFI/BOOT/BOOTX64.EFI', 'EFI/edgeplane/grub.cfg', 'EFI/edgeplane/grubenv']) {
      await sh('mcopy', ['-n', '-i', esp(), `::/${f}`, join(local, f.split('/').pop()!)]);
    }
    expect((await readFile(join(local, 'BOOTX64.EFI'))).subarray(0, 2).toString()).toBe('MZ'); // a PE/COFF EFI binary
    const cfg = await readFile(join(local, 'grub.cfg'), 'utf8');
    expect(cfg).toContain('load_env --file ${prefix}/grubenv active_slot next_slot try_slot');
    expect(cfg).toContain('root=PARTLABEL=root-a ro edgeplane.slot=A panic=5 console=tty0 console=ttyS0,115200');
    expect((await sh('grub-editenv', [join(local, 'grubenv'), 'list'])).trim()).toBe('active_slot=A');
  });

  it('writes root-a as a clean ext4 slot whose record names the printed digest', async () => {
    await sh('e2fsck', ['-fn', rootA()]);
    const slot = JSON.parse(await sh('debugfs', ['-R', 'cat /usr/lib/edgeplane/slot.json', rootA()]));
    expect(slot).toMatchObject({ digest, name: 'Edgeplane OS', version: '1.2.3' });
    for (const path of [
      '/boot/vmlinuz',
      '/boot/initrd.img',
      '/bin/node',
      '/opt/edgeplane/dist/bin.js',
      '/etc/inittab',
      '/bin/mkfs.ext4',
      '/bin/grub-editenv',
    ]) {
      expect(await sh('debugfs', ['-R', `stat ${path}`, rootA()]), path).toMatch(/Inode: \d+/);
    }
    expect(JSON.parse(await sh('debugfs', ['-R', 'cat /usr/lib/edgeplane/health-checks.json', rootA()]))).toEqual([CHECK]);
    const header = await sh('dumpe2fs', ['-h', rootA()]);
    expect(header).toMatch(/Filesystem volume name:\s+root-a/);
    // The filesystem fits its partition.
    const blocks = Number(/Block count:\s+(\d+)/.exec(header)?.[1]);
    const blockSize = Number(/Block size:\s+(\d+)/.exec(header)?.[1]);
    expect(blocks * blockSize).toBeLessThanOrEqual(512 * 1024 * 1024);
  });

  it('writes the same image into the recovery slot, which the agent never updates', async () => {
    const recovery = `${disk()}?offset=${offsetOf('recovery')}`;
    await sh('e2fsck', ['-fn', recovery]);
    expect(JSON.parse(await sh('debugfs', ['-R', 'cat /usr/lib/edgeplane/slot.json', recovery]))).toMatchObject({ digest, version: '1.2.3' });
    expect(await sh('dumpe2fs', ['-h', recovery])).toMatch(/Filesystem volume name:\s+recovery/);
    expect(await sh('debugfs', ['-R', 'stat /boot/vmlinuz', recovery])).toMatch(/Inode: \d+/);
  });

  it('leaves root-b empty for the first update and formats data as ext4', async () => {
    const rootB = await sh('debugfs', ['-R', 'stats', `${disk()}?offset=${offsetOf('root-b')}`]).catch((err: { stderr?: string }) => err.stderr ?? '');
    expect(rootB).not.toMatch(/Filesystem volume name/);
    expect(await sh('dumpe2fs', ['-h', `${disk()}?offset=${offsetOf('data')}`])).toMatch(/Filesystem volume name:\s+edgeplane-data/);
  });

  it('writes an OCI layout with the tag, and the registry serves the same manifest', async () => {
    const index = JSON.parse(await readFile(join(out, 'oci/index.json'), 'utf8'));
    expect(index.manifests).toEqual([expect.objectContaining({ digest, annotations: { 'org.opencontainers.image.ref.name': '1.2.3' } })]);
    const res = await fetch(`${registry.url}/v2/edgeplane/os/manifests/1.2.3`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    expect(JSON.parse(await readFile(join(out, 'build.json'), 'utf8'))).toMatchObject({ digest, tag: '1.2.3', disk: disk() });
  });

  it("runs the image's own Node and agent with the image's own libraries", async () => {
    const manifest = JSON.parse(await readFile(join(out, 'oci/blobs', digest.replace(':', '/')), 'utf8'));
    expect(manifest.layers).toHaveLength(1);
    const layer = join(out, 'oci/blobs', manifest.layers[0].digest.replace(':', '/'));
    const root = join(dir, 'rootfs');
    await mkdir(root);
    await sh('tar', ['-xzf', layer, '-C', root, './bin', './lib', './lib64', './opt', './usr/lib/edgeplane']).catch(() =>
      sh('tar', ['-xzf', layer, '-C', root, 'bin', 'lib', 'lib64', 'opt', 'usr/lib/edgeplane']),
    );
    const loader = join(root, 'lib64/ld-linux-x86-64.so.2');
    const libs = (await readdir(join(root, 'lib'))).map((d) => join(root, 'lib', d)).join(':');
    // Every library node needs resolves inside the image (the loader's own view, not the host's ldd).
    const list = await sh(loader, ['--library-path', libs, '--list', join(root, 'bin/node')]);
    for (const line of list.split('\n').filter((l) => l.includes('=>'))) expect(line).toContain(`=> ${root}/`);
    const help = await sh(loader, ['--library-path', libs, join(root, 'bin/node'), join(root, 'opt/edgeplane/dist/bin.js'), 'agent', '--help']);
    expect(help).toContain('Usage: edgeplane agent');
    expect(JSON.parse(await readFile(join(root, 'usr/lib/edgeplane/image.json'), 'utf8'))).toEqual({ name: 'Edgeplane OS', version: '1.2.3' });
  });

  it('rejects a --health-check that is not JSON or not a valid health check, before writing anything', async () => {
    const bad = join(dir, 'bad');
    const notJson = await cli(['image', 'build', '--version', '1', '-o', bad, '--health-check', '{bad json']);
    expect(notJson.code).toBe(1);
    expect(notJson.out).toContain('Error: --health-check is not valid JSON');
    const invalid = await cli(['image', 'build', '--version', '1', '-o', bad, '--health-check', '{"name":"x","type":"command"}']);
    expect(invalid.code).toBe(1);
    expect(invalid.out).toContain('Error: --health-check is not a valid health check:\n  command: a command health check needs a command (argv array)');
    expect(existsSync(bad)).toBe(false);
  });

  it('reports a builder error with its code and exits non-zero', async () => {
    const failed = join(dir, 'failed');
    const r = await cli(['image', 'build', '--base', 'busybox', '--version', '1', '-o', failed, '--module', 'no_such_driver']);
    expect(r.code).toBe(1);
    expect(r.out).toContain('Error: image build failed (ImageBuildFailed): kernel module no_such_driver is neither a module nor built into the kernel');
    expect(await readdir(failed)).toEqual([]); // the work directory is gone, nothing half-built is left
  });
});
