import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { CACHE_KEEP, pruneCache, touchEntry } from './cache.js';
import { runPipeline, which } from './tools.js';

export interface WrittenLayout {
  /** Manifest digest: what a profile pins. */
  digest: string;
  layer: { digest: string; diffId: string; size: number; mediaType: string };
  /** Bytes of the uncompressed layer (the root filesystem as a tar). */
  uncompressedSize: number;
  /** True when the compressed layer came from the cache. */
  cached: boolean;
}

const MEDIA = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  config: 'application/vnd.oci.image.config.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
};
const REF_NAME = 'org.opencontainers.image.ref.name';

/**
 * A single-layer OCI image of a Debian root filesystem tree. The layer is GNU tar, not the agent's
 * writeOciImage (node-tar, portable headers): a Debian tree needs its owners (_chrony, systemd-journal,
 * setgid tools) and hard links kept. Reproducible: names sorted, every mtime clamped to
 * SOURCE_DATE_EPOCH, numeric owners, no atime/ctime, gzip without a name or time, zstd's output the
 * same for any number of threads. The compressed layer is cached by the uncompressed layer's digest
 * and the compression, so an unchanged tree is not compressed again. Device nodes under /dev are
 * left out (devtmpfs provides them at boot).
 *
 * Compression: zstd (tar+zstd) when the tree carries the zstd program, else gzip. A device unpacks
 * the NEXT image with the tools of the one it runs, and zstd costs a third of gzip's CPU there
 * (natively on an OS 2 layer: 1.7 s against 5.5 s, and under QEMU's TCG every cycle costs 10-20
 * times more) and downloads a tenth less (256 MiB against gzip -6's 282 MiB). Level 3 (zstd's default):
 * 10 s of CPU for that layer; level 10 saves another 30 MiB for four times the CPU, which every
 * build of a changed tree (each agent change) would pay.
 * `compression` overrides it: gzip for devices that run an OS 2 image without zstd.
 */
export async function writeTreeImage(options: {
  tree: string;
  layoutDir: string;
  tag: string;
  work: string;
  cacheDir: string;
  epoch: number;
  labels: Record<string, string>;
  compression?: LayerCompression;
}): Promise<WrittenLayout> {
  const compression = options.compression ?? (await defaultCompression(options.tree));
  await which('tar');
  await which(compression);
  const blobs = join(options.layoutDir, 'blobs/sha256');
  await mkdir(blobs, { recursive: true });
  const tarFile = join(options.work, 'layer.tar');
  await runPipeline(
    `tar --create --file='${tarFile}' --directory='${options.tree}' --sort=name --numeric-owner ` +
      `--mtime=@${options.epoch} --clamp-mtime --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime ` +
      `--exclude='./dev/*' .`,
    options.tree,
  );
  const diffId = await sha256File(tarFile);
  const uncompressedSize = (await stat(tarFile)).size;
  const layerCache = join(options.cacheDir, 'layers');
  await mkdir(layerCache, { recursive: true });
  const cachedLayer = join(layerCache, `${diffId.slice(7)}.tar.${compression === 'zstd' ? 'zst' : 'gz'}`);
  const cached = Boolean(await stat(cachedLayer).catch(() => undefined));
  if (!cached) {
    const tmp = `${cachedLayer}.${process.pid}.tmp`;
    const compress = compression === 'zstd' ? 'zstd -q -3 -T0 --no-progress' : 'gzip -n -6';
    await runPipeline(`${compress} < '${tarFile}' > '${tmp}'`, options.work);
    await rename(tmp, cachedLayer);
    await pruneCache(layerCache, CACHE_KEEP.layers, ['.tar.zst', '.tar.gz']);
  } else await touchEntry(cachedLayer);
  await rm(tarFile, { force: true });
  const layerDigest = await sha256File(cachedLayer);
  const size = (await stat(cachedLayer)).size;
  const blob = join(blobs, layerDigest.slice(7));
  if (!(await stat(blob).catch(() => undefined))) await link(cachedLayer, blob).catch(() => copyFile(cachedLayer, blob));

  const config = Buffer.from(
    JSON.stringify({
      architecture: oci.ociArch(),
      os: 'linux',
      created: new Date(options.epoch * 1000).toISOString(),
      config: { Labels: options.labels },
      rootfs: { type: 'layers', diff_ids: [diffId] },
    }),
  );
  const configDesc = await putBlob(blobs, MEDIA.config, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: configDesc,
      layers: [{ mediaType: MEDIA[compression], digest: layerDigest, size }],
      annotations: options.labels,
    }),
  );
  const manifestDesc = await putBlob(blobs, MEDIA.manifest, manifest);
  await writeFile(join(options.layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const indexPath = join(options.layoutDir, 'index.json');
  const existing: { annotations?: Record<string, string> }[] = await readFile(indexPath, 'utf8').then(
    (t) => JSON.parse(t).manifests ?? [],
    () => [],
  );
  const manifests = [...existing.filter((m) => m.annotations?.[REF_NAME] !== options.tag), { ...manifestDesc, annotations: { [REF_NAME]: options.tag } }];
  await writeFile(indexPath, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests }));
  return { digest: manifestDesc.digest, layer: { digest: layerDigest, diffId, size, mediaType: MEDIA[compression] }, uncompressedSize, cached };
}

export type LayerCompression = 'gzip' | 'zstd';

/** zstd when the image itself can unpack a zstd layer (it carries the zstd program), else gzip. */
async function defaultCompression(tree: string): Promise<LayerCompression> {
  for (const dir of ['usr/bin', 'bin']) if (await stat(join(tree, dir, 'zstd')).catch(() => undefined)) return 'zstd';
  return 'gzip';
}

async function putBlob(blobs: string, mediaType: string, bytes: Buffer) {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(join(blobs, digest.slice(7)), bytes);
  return { mediaType, digest, size: bytes.length };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
