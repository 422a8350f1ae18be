/**
 * Where an Edgeplane OS 2 slot fill spends its time, natively: the agent's own pull (registry
 * client + blob store), extraction (extract.ts) and slot write (LinuxSlots.writeSlot, a file-backed
 * slot) for a real OS 2 layer from the image build cache, served by a local registry.
 *
 *   npx tsx bench/os2-slot-fill.ts [layer.tar.gz|layer.tar.zst]   (default: newest cached OS 2 layer)
 *
 * Under QEMU's TCG every CPU cycle costs 10-20x, so the CPU seconds per phase are the numbers that
 * matter (printed beside the wall time). `node --cpu-prof --import tsx bench/os2-slot-fill.ts` profiles it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { LinuxSlots } from '../packages/agent/src/device/linux/linux-slots.js';
import { BlobStore, extractImage, MEDIA, pullImage, RegistryClient } from '../packages/agent/src/oci/index.js';
import { pushOciLayout, startRegistry } from '../test/support/registry.js';

const MiB = 1024 * 1024;

function newestLayer(): string {
  const dir = join(process.env.EDGEPLANE_IMAGE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'edgeplane/image'), 'layers');
  const out = execFileSync('sh', ['-c', `ls -t '${dir}'/*.tar.gz '${dir}'/*.tar.zst 2>/dev/null | head -1`], { encoding: 'utf8' }).trim();
  if (!out) throw new Error(`no OS 2 layer in ${dir}: build an OS 2 image first`);
  return out;
}

async function timed<T>(name: string, fn: () => Promise<T>, rows: Row[]): Promise<T> {
  const cpu0 = process.cpuUsage();
  const child0 = childCpu();
  const t0 = performance.now();
  const result = await fn();
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  rows.push({ name, wall, cpu: (cpu.user + cpu.system) / 1e6, childCpu: childCpu() - child0 });
  return result;
}

interface Row {
  name: string;
  wall: number;
  cpu: number;
  childCpu: number;
}

/** CPU seconds of finished child processes (mksquashfs, mkfs.ext4, e2fsck, zstd), from /proc/self/stat cutime+cstime. */
function childCpu(): number {
  const fields = execFileSync('cat', [`/proc/${process.pid}/stat`], { encoding: 'utf8' })
    .split(') ')[1]
    .split(' ');
  const ticks = Number(fields[13]) + Number(fields[14]);
  return ticks / 100;
}

async function digestOf(file: string, decompress?: () => NodeJS.ReadWriteStream): Promise<string> {
  const hash = createHash('sha256');
  const sink = async (source: AsyncIterable<Buffer | string>) => {
    for await (const chunk of source) hash.update(chunk);
  };
  if (decompress) await pipeline(createReadStream(file), decompress(), sink);
  else await pipeline(createReadStream(file), sink);
  return `sha256:${hash.digest('hex')}`;
}

async function main(): Promise<void> {
  const layerFile = process.argv[2] ?? newestLayer();
  const zstd = layerFile.endsWith('.zst');
  const work = await mkdtemp(join(tmpdir(), 'ep-slotfill-'));
  const registry = await startRegistry();
  const rows: Row[] = [];
  try {
    // An OCI layout around the cached layer (what `edgeplane image build` writes), pushed to the registry.
    const layout = join(work, 'oci');
    const blobs = join(layout, 'blobs/sha256');
    await mkdir(blobs, { recursive: true });
    const size = (await stat(layerFile)).size;
    const layerDigest = await digestOf(layerFile);
    const diffId = zstd
      ? `sha256:${execFileSync('sh', ['-c', `zstd -dc '${layerFile}' | sha256sum`], { encoding: 'utf8' }).split(' ')[0]}`
      : await digestOf(layerFile, () => createGunzip());
    execFileSync('ln', ['-s', layerFile, join(blobs, layerDigest.slice(7))]);
    const put = async (mediaType: string, bytes: Buffer) => {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      await writeFile(join(blobs, digest.slice(7)), bytes);
      return { mediaType, digest, size: bytes.length };
    };
    const config = await put(
      MEDIA.ociConfig,
      Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } })),
    );
    const layerMedia = zstd ? 'application/vnd.oci.image.layer.v1.tar+zstd' : MEDIA.ociLayerGzip;
    const manifest = await put(
      MEDIA.ociManifest,
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config, layers: [{ mediaType: layerMedia, digest: layerDigest, size }] })),
    );
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }),
    );
    const pushed = await pushOciLayout(layout, `${registry.host}/bench/os:bench`);
    if (pushed !== manifest.digest) throw new Error(`pushed ${pushed}, expected ${manifest.digest}`);
    console.log(`layer ${layerFile}: ${(size / MiB).toFixed(1)} MiB ${zstd ? 'zstd' : 'gzip'}`);

    // The agent's path, phase by phase (os.manager.ts stage()).
    const store = new BlobStore(join(work, 'agent/cache'));
    const source = new RegistryClient({ registry: registry.host, repository: 'bench/os', insecure: true });
    const pulled = await timed('pull (download + sha256 into the blob store)', () => pullImage({ source, digest: manifest.digest, store }), rows);
    const rootfs = join(work, 'agent/staging/rootfs');
    await timed('extract (decompress + tar into the staging tree)', () => extractImage(store, pulled.manifest, rootfs), rows);
    const slots = new LinuxSlots({ root: work, grubenv: join(work, 'grubenv'), targets: { A: join(work, 'slot-a.img'), B: join(work, 'slot-b.img') } });
    const treeBytes = Number(execFileSync('du', ['-sb', rootfs], { encoding: 'utf8' }).split(/\s/)[0]);
    await timed(
      'slot write (OS 2: mksquashfs, fsync, verify, copy)',
      () => slots.writeSlot('B', rootfs, { digest: manifest.digest, image: 'bench', writtenAt: new Date().toISOString() }),
      rows,
    );
    console.log(`tree ${(treeBytes / MiB).toFixed(0)} MiB; slot image ${((await stat(join(work, 'slot-b.img'))).size / MiB).toFixed(0)} MiB`);

    // Reference points: what the bare tools cost on the same bytes.
    await timed('  ref: sha256 of the compressed layer (node)', () => digestOf(layerFile), rows);
    if (zstd) await timed('  ref: zstd -dc > /dev/null', async () => execFileSync('sh', ['-c', `zstd -dc '${layerFile}' > /dev/null`]), rows);
    else {
      await timed('  ref: gunzip (node zlib) > /dev/null', () => digestOf(layerFile, () => createGunzip()), rows);
      await timed('  ref: gzip -dc > /dev/null', async () => execFileSync('sh', ['-c', `gzip -dc '${layerFile}' > /dev/null`]), rows);
    }
    const tree = join(work, 'gnu-tree');
    await mkdir(tree);
    const decompress = zstd ? 'zstd -dc' : 'gzip -dc';
    await timed(`  ref: ${decompress} | GNU tar -x`, async () => execFileSync('sh', ['-c', `${decompress} '${layerFile}' | tar -x -C '${tree}'`]), rows);
    // What the slot write cost when OS 2 slots were ext4 (same tree, a slot of twice its size).
    const ext4 = join(work, 'ext4-slot.img');
    await timed(
      '  ref: mkfs.ext4 -d + e2fsck -fn (ext4 slots)',
      async () => {
        execFileSync('mkfs.ext4', ['-F', '-q', '-d', tree, ext4, `${Math.ceil((2 * treeBytes) / 1024)}k`]);
        execFileSync('e2fsck', ['-fn', ext4]);
      },
      rows,
    );
    await rm(ext4, { force: true });
    await rm(tree, { recursive: true, force: true });
  } finally {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  }
  const total = rows.filter((r) => !r.name.startsWith(' ')).reduce((a, r) => ({ wall: a.wall + r.wall, cpu: a.cpu + r.cpu + r.childCpu }), { wall: 0, cpu: 0 });
  console.log('phase'.padEnd(58), 'wall s', ' node cpu s', ' tools cpu s');
  for (const r of rows) console.log(r.name.padEnd(58), r.wall.toFixed(1).padStart(6), r.cpu.toFixed(1).padStart(11), r.childCpu.toFixed(1).padStart(12));
  console.log('agent path total'.padEnd(58), total.wall.toFixed(1).padStart(6), `${total.cpu.toFixed(1)} (node + tools)`.padStart(24));
  console.log(`load average: ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim()}`);
}

await main();
