import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { deltaManifest } from '../packages/agent/src/oci/delta/artifact.js';
import { CODEC, encodeIndex, INDEX_MEDIA_TYPE, type IndexEntry, PACK_MEDIA_TYPE, packChunk } from '../packages/agent/src/oci/delta/chunk-index.js';
import { chunkFile } from '../packages/agent/src/oci/delta/chunker.js';
import { applyPatch, makePatch, sha256Prefix } from '../packages/agent/src/oci/delta/patch.js';
import { reproducibleMkfsArgs } from '../packages/agent/src/oci/delta/slot-image.js';
import type { BenchResult } from './run.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;
/** A 2 GiB slot partition (the OS 2 disk layout's root-a/root-b are larger; unused space is zeroes either way). */
const SLOT_BYTES = 2048 * MiB;
const mib = (n: number) => Math.round((n / MiB) * 100) / 100;

async function sh(script: string): Promise<string> {
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], { maxBuffer: 64 * MiB });
  return stdout.trim();
}

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'edgeplane');
}

/** The .debs the update brings: the monthly change downgrades nothing, so the OLD image gets the older versions. */
const OLD_DEBS = ['libssl3=3.0.20-1~deb12u2', 'openssl=3.0.20-1~deb12u2'];
const OLD_KERNEL = 'linux-image-6.1.0-50-amd64';
const NEW_KERNEL_VERSION = '6.1.0-57-amd64';

async function debs(dir: string): Promise<{ monthly: string[]; kernel: string }> {
  await mkdir(dir, { recursive: true });
  const want = [...OLD_DEBS, OLD_KERNEL];
  const have = await readdir(dir);
  const file = (spec: string) => {
    const [name, version] = spec.split('=');
    return have.find((f) => f.startsWith(`${name}_`) && (!version || f.includes(version.replace(/:/g, '%3a'))));
  };
  // Fetched once with the machine's apt (its configured mirror), kept beside the image cache.
  if (want.some((w) => !file(w))) await sh(`cd '${dir}' && apt-get download ${want.join(' ')} 2>/dev/null`);
  const again = await readdir(dir);
  const find = (spec: string) => {
    const [name] = spec.split('=');
    const f = again.find((x) => x.startsWith(`${name}_`));
    if (!f) throw new Error(`no .deb for ${spec} in ${dir}`);
    return join(dir, f);
  };
  return { monthly: OLD_DEBS.map(find), kernel: find(OLD_KERNEL) };
}

/** The agent bundle (dist/edgeplane-agent-*.tar.gz) into <tree>/opt/edgeplane; `rebuilt` changes it as a rebuild does. */
async function installAgent(tree: string, rebuilt: boolean): Promise<void> {
  const bundle = (await readdir(join(ROOT, 'dist'))).find((f) => /^edgeplane-agent-.*-linux-x64\.tar\.gz$/.test(f));
  if (!bundle) throw new Error('no dist/edgeplane-agent-*-linux-x64.tar.gz: run npm run pack first');
  await sh(`mkdir -p '${tree}/opt/edgeplane' && tar -xzf '${join(ROOT, 'dist', bundle)}' -C '${tree}/opt/edgeplane' --strip-components=1`);
  if (!rebuilt) return;
  // A rebuild changes the version everywhere and code in the middle of the largest chunks (esbuild
  // keeps chunk order; names of changed chunks change too, which renames but does not move content).
  await sh(`cd '${tree}/opt/edgeplane' && grep -rl --include='*.js' --include='*.json' '0\\.1\\.0' . | xargs sed -i 's/0\\.1\\.0/0.1.1/g'`);
  const dist = join(tree, 'opt/edgeplane/dist');
  const files = await Promise.all((await readdir(dist)).filter((f) => f.endsWith('.js')).map(async (f) => ({ f, size: (await stat(join(dist, f))).size })));
  for (const { f } of files.sort((a, b) => b.size - a.size).slice(0, 3)) {
    const text = await readFile(join(dist, f), 'utf8');
    const mid = text.indexOf('\n', Math.floor(text.length / 2));
    const added = `\n// rebuilt\nfunction deltaBenchChange(x) {\n  return x.map((v) => ({ v, at: Date.now() }));\n}\n`.repeat(40);
    await writeFile(join(dist, f), text.slice(0, mid) + added + text.slice(mid));
  }
}

async function configure(tree: string, version: string, sysctl: string): Promise<void> {
  await mkdir(join(tree, 'usr/lib/edgeplane'), { recursive: true });
  await writeFile(join(tree, 'usr/lib/edgeplane/image.json'), `${JSON.stringify({ name: 'Edgeplane OS', version })}\n`);
  await writeFile(join(tree, 'etc/sysctl.d/90-edgeplane.conf'), sysctl);
}

async function trees(work: string): Promise<{ from: string; to: string; majorFrom: string; what: string }> {
  const tarDir = join(cacheDir(), 'image/debian');
  const tars = existsSync(tarDir) ? (await readdir(tarDir)).filter((f) => f.endsWith('.tar')) : [];
  if (!tars.length) throw new Error(`no cached Debian root filesystem in ${tarDir}: build Edgeplane OS 2 once (edgeplane image build) first`);
  const base = join(work, 'base');
  if (!existsSync(join(base, 'etc/debian_version'))) {
    await rm(base, { recursive: true, force: true });
    await mkdir(base, { recursive: true });
    await sh(`tar -xf '${join(tarDir, tars[0])}' -C '${base}'`);
  }
  const d = await debs(join(cacheDir(), 'delta-bench'));
  const from = join(work, 'from');
  const to = join(work, 'to');
  const majorFrom = join(work, 'major-from');
  for (const t of [from, to, majorFrom]) {
    await rm(t, { recursive: true, force: true });
    await sh(`cp -a '${base}' '${t}'`);
  }
  for (const t of [from, majorFrom]) {
    for (const deb of d.monthly) await sh(`dpkg-deb -x '${deb}' '${t}'`);
    await sh(`sed -i 's/^Version: 3\\.0\\.22-1~deb12u2$/Version: 3.0.20-1~deb12u2/' '${t}/var/lib/dpkg/status'`);
    await installAgent(t, false);
    await configure(t, '2.0.0', 'vm.swappiness = 10\n');
  }
  await installAgent(to, true);
  await configure(to, '2.0.1', 'vm.swappiness = 10\nnet.core.somaxconn = 4096\n');
  // The major change: the old image had the previous kernel ABI (its vmlinuz and modules).
  await sh(
    `rm -rf '${majorFrom}'/boot/*-${NEW_KERNEL_VERSION} '${majorFrom}'/{usr/,}lib/modules/${NEW_KERNEL_VERSION} && dpkg-deb -x '${d.kernel}' '${majorFrom}'`,
  );
  const size = await sh(`du -sm '${to}' | cut -f1`);
  return {
    from,
    to,
    majorFrom,
    what: `Debian root filesystem ${tars[0].slice(0, 12)} (${size} MiB tree); monthly: libssl3+openssl 3.0.20 -> 3.0.22, agent bundle rebuilt, a sysctl file and image.json changed; major: also kernel ${OLD_KERNEL.replace('linux-image-', '')} -> ${NEW_KERNEL_VERSION}`,
  };
}

async function mkfs(tree: string, image: string, reproducible: boolean): Promise<void> {
  await rm(image, { force: true });
  const args = reproducible ? reproducibleMkfsArgs('root-b') : ['-F', '-q', '-L', 'root-b'];
  await run('mkfs.ext4', [...args, '-d', tree, image, `${SLOT_BYTES / 1024}k`], {
    env: { ...process.env, ...(reproducible ? { E2FSPROGS_FAKE_TIME: '1767225600' } : {}) },
  });
}

async function layerBytes(tree: string): Promise<{ gzip: number; zstd: number }> {
  const tar = `tar --sort=name --numeric-owner --mtime=@1767225600 -C '${tree}' -cf - .`;
  return { gzip: Number(await sh(`${tar} | gzip -n -6 | wc -c`)), zstd: Number(await sh(`${tar} | zstd -10 -T0 -q | wc -c`)) };
}

/** casync make of both images with 64 KiB chunks: bytes of the target's chunks not in the seed's store, plus the target index. */
async function casync(work: string, name: string, fromImg: string, toImg: string): Promise<number> {
  const dir = join(work, 'casync', name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await run('casync', ['make', '--chunk-size=65536', `--store=${dir}/from.castr`, `${dir}/from.caibx`, fromImg], { maxBuffer: 64 * MiB });
  await run('casync', ['make', '--chunk-size=65536', `--store=${dir}/to.castr`, `${dir}/to.caibx`, toImg], { maxBuffer: 64 * MiB });
  return (
    Number(
      await sh(
        `cd '${dir}' && comm -13 <(cd from.castr && find . -name '*.cacnk' | sort) <(cd to.castr && find . -name '*.cacnk' | sort) | (cd to.castr && xargs -r stat -c %s) | awk '{s+=$1} END {print s+0}'`,
      ),
    ) + (await stat(`${dir}/to.caibx`)).size
  );
}

/** Whether a command is on PATH: the bench installs nothing; a missing tool is reported, not fetched. */
async function have(tool: string): Promise<boolean> {
  return run('bash', ['-c', `command -v ${tool}`]).then(
    () => true,
    () => false,
  );
}

async function xdelta(work: string, fromImg: string, toImg: string): Promise<number> {
  const out = join(work, 'xdelta.vcdiff');
  await run('xdelta3', ['-e', '-f', '-9', '-B', String(SLOT_BYTES), '-s', fromImg, toImg, out]);
  const size = (await stat(out)).size;
  await rm(out, { force: true });
  return size;
}

/**
 * Edgeplane's patch, as `edgeplane image delta --from` publishes it (xdelta3 -9 -S none, brotli) and
 * the delta manifest the device reads first; with `apply`, also applied by the agent's decoder and
 * checked against the new image's sha256 (how long that takes on this machine).
 */
async function edgeplanePatch(work: string, fromImg: string, toImg: string, apply: boolean): Promise<{ bytes: number; patch: number; applySeconds?: number }> {
  const out = join(work, 'patch.br');
  const patch = await makePatch(fromImg, toImg, out);
  const d = (n: number) => `sha256:${String(n).repeat(64)}`;
  const manifest = deltaManifest(
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d(1), size: 1000 },
    { mediaType: INDEX_MEDIA_TYPE, digest: d(2), size: 400_000 },
    [{ mediaType: PACK_MEDIA_TYPE, digest: d(3), size: 200_000_000 }],
    { digest: d(4), size: SLOT_BYTES },
    [{ digest: d(5), size: patch, fromImage: d(6), fromSlot: d(7), fromSize: SLOT_BYTES }],
  ).length;
  let applySeconds: number | undefined;
  if (apply) {
    const target = join(work, 'patched.img');
    const digest = (await sha256Prefix(toImg, SLOT_BYTES)) ?? '';
    const started = Date.now();
    await applyPatch({
      patchBlob: out,
      source: fromImg,
      sourceSize: SLOT_BYTES,
      target,
      targetSize: SLOT_BYTES,
      targetDigest: digest,
      workDir: join(work, 'apply'),
    });
    applySeconds = Math.round((Date.now() - started) / 100) / 10;
    await rm(target, { force: true });
  }
  await rm(out, { force: true });
  return { bytes: patch + manifest, patch, applySeconds };
}

/** Edgeplane's delta: chunk index + the target's chunks the seeds lack, brotli-compressed as in the pack. */
async function edgeplaneDelta(fromImgs: string[], toImg: string): Promise<{ bytes: number; index: number; reused: number }> {
  const have = new Set<string>();
  for (const seed of fromImgs) await chunkFile(seed, (c) => void have.add(c.hash.toString('hex')));
  const entries: IndexEntry[] = [];
  const fetched = new Set<string>();
  let bytes = 0;
  let reused = 0;
  const r = await chunkFile(toImg, (c) => {
    const key = c.hash.toString('hex');
    entries.push({ hash: c.hash, length: c.length, pack: 0, packOffset: 0, packLength: 1, codec: CODEC.brotli });
    if (have.has(key)) reused += c.length;
    else if (!fetched.has(key)) {
      fetched.add(key);
      bytes += packChunk(c.data, CODEC.brotli).bytes.length;
    }
  });
  const index = encodeIndex({ size: r.size, digest: r.digest, entries }).length;
  return { bytes: bytes + index, index, reused };
}

export async function deltaUpdates(): Promise<BenchResult> {
  const work = process.env.EDGEPLANE_DELTA_BENCH_DIR ?? '/var/tmp/edgeplane-delta-bench';
  await mkdir(work, { recursive: true });
  const img = (n: string) => join(work, `${n}.img`);
  // EDGEPLANE_DELTA_BENCH_REUSE=1 measures the trees and slot images of the previous run again.
  const reuse = process.env.EDGEPLANE_DELTA_BENCH_REUSE === '1' && existsSync(img('major-from-r'));
  const t = reuse
    ? { from: join(work, 'from'), to: join(work, 'to'), majorFrom: join(work, 'major-from'), what: await readFile(join(work, 'what.txt'), 'utf8') }
    : await trees(work);
  await writeFile(join(work, 'what.txt'), t.what);
  if (!reuse) {
    await mkfs(t.from, img('from'), false);
    await mkfs(t.to, img('to'), false);
    await mkfs(t.majorFrom, img('major-from'), false);
    await mkfs(t.from, img('from-r'), true);
    await mkfs(t.to, img('to-r'), true);
    await mkfs(t.majorFrom, img('major-from-r'), true);
  }
  const layer = await layerBytes(t.to);
  const m: Record<string, number> = {};
  // EDGEPLANE_DELTA_BENCH_KINDS=monthly skips the kernel upgrade (xdelta3 -9 on 2 GiB images takes minutes).
  const kinds = (process.env.EDGEPLANE_DELTA_BENCH_KINDS ?? 'monthly,major').split(',');
  const missing = (await Promise.all(['casync', 'xdelta3'].map(async (t) => ((await have(t)) ? '' : t)))).filter(Boolean);
  for (const [kind, from] of [
    ['monthly', 'from'],
    ['major', 'major-from'],
  ] as const) {
    if (!kinds.includes(kind)) continue;
    m[`${kind}: (a) whole layer, gzip -6 (as shipped) MiB`] = mib(layer.gzip);
    m[`${kind}: (a) whole layer, zstd -10 MiB`] = mib(layer.zstd);
    if (!missing.includes('casync')) {
      m[`${kind}: (b) casync 64 KiB, slots by plain mkfs.ext4 -d MiB`] = mib(await casync(work, kind, img(from), img('to')));
      m[`${kind}: (b) casync 64 KiB, reproducible slots MiB`] = mib(await casync(work, `${kind}-r`, img(`${from}-r`), img('to-r')));
    }
    if (!missing.includes('xdelta3')) {
      m[`${kind}: (c) xdelta3 -9, slots by plain mkfs.ext4 -d MiB`] = mib(await xdelta(work, img(from), img('to')));
      m[`${kind}: (c) xdelta3 -9, reproducible slots MiB`] = mib(await xdelta(work, img(`${from}-r`), img('to-r')));
    }
    if (!missing.includes('xdelta3')) {
      const p = await edgeplanePatch(work, img(`${from}-r`), img('to-r'), kind === 'monthly');
      m[`${kind}: (d) Edgeplane patch + manifest, device on the previous release's slot image MiB`] = mib(p.bytes);
      if (p.applySeconds !== undefined) m[`${kind}: (d) patch applied and verified by the agent's decoder s`] = p.applySeconds;
    }
    const d = await edgeplaneDelta([img(`${from}-r`)], img('to-r'));
    m[`${kind}: (d) Edgeplane chunk index, reproducible slots MiB`] = mib(d.bytes);
    m[`${kind}: (d) of which the index MiB`] = mib(d.index);
    m[`${kind}: (d) bytes reused from the active slot MiB`] = mib(d.reused);
    const plain = await edgeplaneDelta([img(from)], img('to-r'));
    m[`${kind}: (d) seeded from a slot written by plain mkfs.ext4 -d MiB`] = mib(plain.bytes);
    const others = Object.entries(m)
      .filter(([k]) => k.startsWith(`${kind}: (b)`) || k.startsWith(`${kind}: (c)`))
      .map(([, v]) => v);
    // (d) is the cheapest path Edgeplane offers the device: the patch for a device on the previous
    // release's published slot image, the chunk index otherwise (both reported above).
    const patched = m[`${kind}: (d) Edgeplane patch + manifest, device on the previous release's slot image MiB`];
    const best = patched !== undefined ? Math.min(patched, mib(d.bytes)) : mib(d.bytes);
    m[`${kind}: (a) gzip / (d)`] = Math.round((mib(layer.gzip) / best) * 100) / 100;
    if (others.length) {
      m[`${kind}: (d) / best of (b), (c)`] = Math.round((best / Math.min(...others)) * 100) / 100;
      m[`${kind}: (d) chunk index only / best of (b), (c)`] = Math.round((mib(d.bytes) / Math.min(...others)) * 100) / 100;
    }
  }
  return {
    name: 'delta-updates',
    description: `Bytes a device downloads to update a ${SLOT_BYTES / MiB} MiB ext4 slot (mkfs.ext4 -d, as the slot writer does) from the image it runs. ${t.what}. (a) the whole OS layer; (b) casync 2 (Debian) make --chunk-size=65536 of both slot images, bytes of the new image's chunks missing from the old one's store (zstd, casync's default) + its .caibx; (c) xdelta3 -9 -B <slot size> between the slot images; (d) Edgeplane's delta: for a device whose active slot is the previous release's published slot image, the patch (xdelta3 -9 -S none, brotli) + the delta manifest; for any other device the chunk index (FastCDC, 64 KiB average) + the missing chunks brotli-compressed; (d) in the ratios is the patch where there is one. "Plain" slots are written by mkfs.ext4 -d as today (random UUID and hash seed, the current time); "reproducible" ones with a fixed UUID, hash seed and E2FSPROGS_FAKE_TIME, as the delta builder and agent write them.${missing.length ? ` Not measured, not installed on this machine (the bench installs nothing): ${missing.join(', ')}.` : ''}`,
    metrics: m,
  };
}
