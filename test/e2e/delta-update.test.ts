import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Device, LinuxDevice, type ManagerContext, OsManager, oci, SimDevice, type SlotBoot } from '@edgeplane/agent';
import { peKernelHead } from '@edgeplane/agent/oci/testing-pe';
import type { OsSpec, OsStatus } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';

/** Deterministic filler: successive versions share it, as real releases share most of their files. */
function filler(seed: string, mib: number): string {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const stream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([stream.update(Buffer.alloc((mib * 1024 * 1024) / 2)), stream.final()]).toString('hex');
}

/**
 * A pass-through in front of the real registry that counts the blob bytes it serves (what a device
 * downloads) and can corrupt responses, as a flaky link or a broken mirror would.
 */
async function countingProxy(registry: TestRegistry) {
  const state = {
    blobBytes: 0,
    corrupt: undefined as undefined | ((path: string, range: string | undefined) => boolean),
    /** Sends half the body, then closes the connection (a link that drops mid-download). */
    cut: undefined as undefined | ((path: string, range: string | undefined) => boolean),
  };
  const server: Server = createServer(async (req, res) => {
    const headers: Record<string, string> = {};
    for (const h of ['accept', 'range', 'content-type']) if (req.headers[h]) headers[h] = String(req.headers[h]);
    const up = await fetch(`${registry.url}${req.url}`, { method: req.method, headers, redirect: 'manual' });
    let body = Buffer.from(await up.arrayBuffer());
    const path = req.url ?? '';
    if (path.includes('/blobs/')) {
      state.blobBytes += body.length;
      if (state.corrupt?.(path, headers.range) && body.length > 100) {
        body = Buffer.from(body);
        body[50] ^= 0xff;
      }
    }
    const out: Record<string, string> = {};
    for (const h of ['content-type', 'content-range', 'docker-content-digest', 'location']) {
      const v = up.headers.get(h);
      if (v) out[h] = v;
    }
    res.writeHead(up.status, { ...out, 'content-length': String(body.length) });
    if (path.includes('/blobs/') && req.method === 'GET' && state.cut?.(path, headers.range)) {
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
      return;
    }
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { host, state, close: () => new Promise<void>((r) => server.close(() => r())) };
}

let registry: TestRegistry;
let proxy: Awaited<ReturnType<typeof countingProxy>>;
let work: string;
const images: Record<string, OsSpec & { layerBytes: number }> = {};
const slotDigests: Record<string, string> = {};
/** Size of the patch each image's delta artifact carries from the image before it. */
const patchBytes: Record<string, number> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ep-delta-upd-'));
  registry = await startRegistry();
  proxy = await countingProxy(registry);
  const bulk = filler('os', 3);
  const files: Record<string, Record<string, string>> = {
    '1.0.0': { 'usr/lib/bulk.txt': bulk },
    '2.0.0': { 'usr/lib/bulk.txt': bulk, 'etc/new.conf': 'feature = on\n' },
    '3.0.0': { 'usr/lib/bulk.txt': bulk, 'etc/new.conf': 'feature = off\n' },
  };
  for (const [version, f] of Object.entries(files)) {
    const digest = await pushOsImage(registry, join(work, `layout-${version}`), version, f);
    const client = new oci.RegistryClient({ registry: registry.host, repository: 'edge/os', insecure: true });
    const manifest = JSON.parse((await client.getManifest(digest)).bytes.toString()) as { layers: { size: number }[] };
    images[version] = { image: `${proxy.host}/edge/os:${version}`, digest, insecure: true, layerBytes: manifest.layers.reduce((s, l) => s + l.size, 0) };
  }
  // 1.0.0 and 2.0.0 have delta artifacts (2.0.0 reusing 1.0.0's chunks, with a patch from 1.0.0's slot image); 3.0.0 has none.
  slotDigests['1.0.0'] = (await oci.delta.publishDelta({ to: `${registry.host}/edge/os:1.0.0` })).slotDigest;
  const second = await oci.delta.publishDelta({ to: `${registry.host}/edge/os:2.0.0`, from: `${registry.host}/edge/os:1.0.0` });
  slotDigests['2.0.0'] = second.slotDigest;
  patchBytes['2.0.0'] = second.patch?.size ?? 0;
});
afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const slotsOf = (device: Device) => device.boot as SlotBoot;

interface Run {
  events: { type: string; reason: string; message: string }[];
  statuses: OsStatus[];
  /** sha256 of each slot image as the delta wrote it (before the slot record goes in). */
  rebuilt: string[];
}

/** One os manager prepare() of `version` on `device`: stages the passive slot. */
async function stage(device: Device, dataDir: string, version: string, options: { abortWhenFetched?: boolean } = {}): Promise<Run> {
  const abort = new AbortController();
  const manager = new OsManager(device, { dataDir });
  const run: Run = { events: [], statuses: [], rebuilt: [] };
  const boot = device.boot as SlotBoot;
  const original = boot.writeSlotImage.bind(boot);
  boot.writeSlotImage = (slot, fill, meta, signal) =>
    original(
      slot,
      async (path) => {
        await fill(path);
        run.rebuilt.push(
          `sha256:${createHash('sha256')
            .update(await readFile(path))
            .digest('hex')}`,
        );
      },
      meta,
      signal,
    );
  const ctx: ManagerContext = {
    device,
    dataDir,
    log: pino({ level: 'silent' }),
    emitEvent: (type, reason, message) => void run.events.push({ type, reason, message }),
    reportProgress: async () => {
      const status = await manager.status();
      run.statuses.push(status);
      // The power goes, or the agent restarts, right after the last chunk arrived.
      if (options.abortWhenFetched && status.progress && status.progress.total > 0 && status.progress.bytes >= status.progress.total)
        abort.abort(new Error('interrupted'));
    },
    signal: abort.signal,
  };
  const { layerBytes, ...desired } = images[version];
  void layerBytes;
  try {
    await manager.prepare(desired, ctx);
  } finally {
    boot.writeSlotImage = original;
  }
  run.statuses.push(await manager.status());
  return run;
}

async function linuxMachine() {
  const root = await mkdtemp(join(work, 'linux-'));
  await mkdir(join(root, 'proc'), { recursive: true });
  const boot = (slot: 'A' | 'B') => writeFile(join(root, 'proc/cmdline'), `root=PARTLABEL=root-${slot.toLowerCase()} edgeplane.slot=${slot}\n`);
  await boot('A');
  const device = new LinuxDevice({
    root,
    slots: { grubenv: join(root, 'grubenv'), targets: { A: join(root, 'a.img'), B: join(root, 'b.img'), recovery: join(root, 'recovery.img') } },
  });
  return { root, device, boot };
}

describe('delta OS updates: the os manager fills the passive slot from what the device has', () => {
  it('LinuxSlots (image files): 2.0.0 is patched from the 1.0.0 slot the delta wrote, downloading only the patch, to the published slot digest', async () => {
    const { root, device, boot } = await linuxMachine();
    proxy.state.blobBytes = 0;
    const first = await stage(device, root, '1.0.0'); // nothing to seed from yet: every chunk is fetched
    expect(first.events.map((e) => e.reason)).toEqual(['ImageStaged']);
    expect(first.rebuilt).toEqual([slotDigests['1.0.0']]);
    expect((await slotsOf(device).readSlot('B'))?.digest).toBe(images['1.0.0'].digest);
    // The slot is the published slot image byte for byte (its record came with it).
    const b = await readFile(join(root, 'b.img'));
    expect(`sha256:${createHash('sha256').update(b).digest('hex')}`).toBe(slotDigests['1.0.0']);

    await boot('B'); // the trial boot of slot B
    proxy.state.blobBytes = 0;
    const second = await stage(device, root, '2.0.0');
    expect(second.events.map((e) => e.reason)).toEqual(['ImageStaged']);
    expect(second.events[0].message).toMatch(/by delta update \(patch from sha256:[a-f0-9]{64}: \d+ bytes downloaded/);
    expect(second.rebuilt).toEqual([slotDigests['2.0.0']]);
    const meta = await slotsOf(device).readSlot('A');
    expect(meta).toMatchObject({ digest: images['2.0.0'].digest, name: 'Edgeplane OS', version: '2.0.0' });
    // Downloaded: the patch only (no chunk index, no chunk); the layer is ~3.5 MiB compressed.
    expect(patchBytes['2.0.0']).toBeGreaterThan(0);
    expect(proxy.state.blobBytes).toBe(patchBytes['2.0.0']);
    expect(proxy.state.blobBytes).toBeLessThan(images['2.0.0'].layerBytes / 100);
    expect(second.statuses.at(-1)).toMatchObject({ phase: 'Staged' });
    expect(second.statuses.at(-1)?.message).toMatch(/by patch from slot B: \d+ bytes downloaded, \d+ reused/);
    expect(await readdir(join(root, 'os'))).not.toContain('delta'); // the download goes once staged
  });

  it('a slot that is not the published slot image byte for byte takes the chunk index, with the reason recorded', async () => {
    const { root, device, boot } = await linuxMachine();
    await stage(device, root, '1.0.0');
    // One byte of slot B changes where the filesystem does not look (its last block): the slot still
    // reads as 1.0.0, but a patch against it would build a wrong image.
    const b = await readFile(join(root, 'b.img'));
    b[b.length - 10] ^= 0x5a;
    await writeFile(join(root, 'b.img'), b);
    await boot('B');
    proxy.state.blobBytes = 0;
    const run = await stage(device, root, '2.0.0');
    expect(run.events.map((e) => [e.type, e.reason])).toEqual([
      ['Normal', 'PatchFallback'],
      ['Normal', 'ImageStaged'],
    ]);
    expect(run.events[0].message).toMatch(/using the chunk index: slot B is not the published slot image of sha256:[a-f0-9]{64} byte for byte/);
    expect(run.events[1].message).toMatch(/by delta update \(\d+ bytes downloaded, \d+ bytes reused/);
    expect(run.rebuilt).toEqual([slotDigests['2.0.0']]);
    expect(proxy.state.blobBytes).toBeLessThan(images['2.0.0'].layerBytes / 4);
    // The transfer size is in the message the server shows in status.os (describe host).
    expect(run.statuses.find((s) => s.progress && /reused/.test(s.message ?? ''))?.message).toMatch(
      /[\d.]+ of [\d.]+ MiB downloaded, [\d.]+ MiB reused from the device's slots/,
    );
    expect(run.statuses.at(-1)?.message).toMatch(/by delta: \d+ bytes downloaded, \d+ reused/);
    expect((await slotsOf(device).readSlot('A'))?.digest).toBe(images['2.0.0'].digest);
  });

  it('a patch corrupted in the registry fails its digest: the chunk index rebuilds the slot, the reason recorded', async () => {
    const { root, device, boot } = await linuxMachine();
    await stage(device, root, '1.0.0');
    await boot('B');
    const client = new oci.RegistryClient({ registry: registry.host, repository: 'edge/os', insecure: true });
    const found = await oci.delta.findDeltaManifest(client, images['2.0.0'].digest);
    const hex = found?.patches[0]?.digest.replace('sha256:', '') ?? '';
    const file = join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const good = await readFile(file);
    const bad = Buffer.from(good);
    bad[bad.length >> 1] ^= 0xff;
    await writeFile(file, bad);
    try {
      const run = await stage(device, root, '2.0.0');
      expect(run.events.map((e) => [e.type, e.reason])).toEqual([
        ['Warning', 'PatchFallback'],
        ['Normal', 'ImageStaged'],
      ]);
      expect(run.events[0].message).toMatch(/the patch from sha256:[a-f0-9]{64} failed: patch sha256:[a-f0-9]{64} does not match its digest/);
      expect(run.rebuilt).toEqual([slotDigests['2.0.0']]);
      expect((await slotsOf(device).readSlot('A'))?.digest).toBe(images['2.0.0'].digest);
    } finally {
      await writeFile(file, good);
    }
  });

  it('an update interrupted after its download resumes with the chunks it already has', async () => {
    const { root, device } = await linuxMachine();
    proxy.state.blobBytes = 0;
    await expect(stage(device, root, '1.0.0', { abortWhenFetched: true })).rejects.toThrow(/interrupted/);
    const firstBytes = proxy.state.blobBytes;
    expect(firstBytes).toBeGreaterThan(1024 * 1024);
    expect(await slotsOf(device).readSlot('B')).toBeUndefined(); // no record: the slot reads as empty
    expect(await readdir(join(root, 'os/delta'))).toHaveLength(1); // the fetched chunks are kept
    proxy.state.blobBytes = 0;
    const run = await stage(device, root, '1.0.0');
    expect(run.events.map((e) => e.reason)).toEqual(['ImageStaged']);
    expect(run.rebuilt).toEqual([slotDigests['1.0.0']]);
    expect(proxy.state.blobBytes).toBeLessThan(firstBytes / 10); // the index again, no chunk
  });

  it('a connection cut mid-download: the update fails retryable, keeps its chunks, and the next attempt resumes by delta', async () => {
    const { root, device } = await linuxMachine();
    let ranges = 0;
    proxy.state.blobBytes = 0;
    // The index is the first range; the second, a chunk pack range, is cut off halfway.
    proxy.state.cut = (_path, range) => Boolean(range && ++ranges === 2);
    try {
      await expect(stage(device, root, '1.0.0')).rejects.toThrow(/the delta download for slot B was interrupted; it resumes on the next attempt: .*cut off/);
    } finally {
      proxy.state.cut = undefined;
    }
    const manager = new OsManager(device, { dataDir: root });
    expect(await manager.status()).toMatchObject({ phase: 'Failed', message: expect.stringMatching(/interrupted/) });
    expect(await readdir(join(root, 'os/delta'))).toHaveLength(1); // the chunk store stays for the next attempt
    const run = await stage(device, root, '1.0.0');
    // No DeltaFallback: the next attempt went by delta again, not by the whole image.
    expect(run.events.map((e) => e.reason)).toEqual(['ImageStaged']);
    expect(run.events[0].message).toMatch(/by delta update \(\d+ bytes downloaded/);
    expect(run.rebuilt).toEqual([slotDigests['1.0.0']]);
  });

  it('a chunk corrupted on the way is fetched again and the update still goes by delta', async () => {
    const { root, device } = await linuxMachine();
    let corrupted = 0;
    proxy.state.corrupt = (_path, range) => Boolean(range && range !== 'bytes=0-' && corrupted++ === 1);
    try {
      const run = await stage(device, root, '1.0.0');
      expect(corrupted).toBeGreaterThan(1);
      expect(run.events.map((e) => [e.type, e.reason])).toEqual([
        ['Warning', 'ChunkRefetched'],
        ['Normal', 'ImageStaged'],
      ]);
      expect(run.events[0].message).toMatch(/chunk sha256:[a-f0-9]{64} of the delta of sha256:[a-f0-9]{64} failed its check \(.*\); fetching it again/);
      expect(run.events[1].message).toContain('(1 chunk fetched again after failing its check)');
      expect(run.rebuilt).toEqual([slotDigests['1.0.0']]);
    } finally {
      proxy.state.corrupt = undefined;
    }
  });

  it('a chunk pack corrupted in the registry: the delta fails verification and the whole image is pulled, with the reason recorded', async () => {
    const { root, device } = await linuxMachine();
    const client = new oci.RegistryClient({ registry: registry.host, repository: 'edge/os', insecure: true });
    const found = await oci.delta.findDelta(client, images['1.0.0'].digest);
    const hex = found?.packs[0].replace('sha256:', '') ?? '';
    const file = join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const good = await readFile(file);
    const bad = Buffer.from(good);
    for (let i = 0; i < bad.length; i += 4096) bad[i] ^= 0xff;
    await writeFile(file, bad);
    try {
      const run = await stage(device, root, '1.0.0');
      // The first chunk fails, is fetched again alone, fails again: the delta is given up.
      expect(run.events.map((e) => [e.type, e.reason])).toEqual([
        ['Warning', 'ChunkRefetched'],
        ['Warning', 'DeltaFallback'],
        ['Normal', 'ImageStaged'],
      ]);
      expect(run.events[1].message).toMatch(/delta update of slot B failed: .*(sha256|decompress)/);
      expect((await slotsOf(device).readSlot('B'))?.digest).toBe(images['1.0.0'].digest);
      expect(run.statuses.some((s) => /whole image: the delta update of slot B failed/.test(s.message ?? ''))).toBe(true);
    } finally {
      await writeFile(file, good);
    }
  });

  it('no delta published: the whole image is pulled and the reason recorded', async () => {
    const { root, device } = await linuxMachine();
    const run = await stage(device, root, '3.0.0');
    expect(run.events.map((e) => [e.type, e.reason])).toEqual([
      ['Normal', 'DeltaFallback'],
      ['Normal', 'ImageStaged'],
    ]);
    expect(run.events[0].message).toContain(`no delta artifact is published for ${images['3.0.0'].digest}`);
    expect((await slotsOf(device).readSlot('B'))?.digest).toBe(images['3.0.0'].digest);
  });

  it('a slot written by delta records whether its kernel is signed, as a slot written from the tree does', async () => {
    for (const [version, signed] of [
      ['5.0.0-unsigned', false],
      ['5.0.0-signed', true],
    ] as const) {
      const digest = await pushOsImage(registry, join(work, `layout-${version}`), version, { 'boot/vmlinuz': peKernelHead(signed).toString('latin1') });
      await oci.delta.publishDelta({ to: `${registry.host}/edge/os:${version}` });
      images[version] = { image: `${proxy.host}/edge/os:${version}`, digest, insecure: true, layerBytes: 0 };
      const { root, device } = await linuxMachine();
      const run = await stage(device, root, version);
      expect(run.events.map((e) => e.reason)).toEqual(['ImageStaged']);
      expect(run.events[0].message).toContain('by delta update');
      expect(await slotsOf(device).readSlot('B')).toMatchObject({ digest, kernelSigned: signed });
    }
  });

  it('SimSlots: the simulated slot keeps its image; the next update seeds from it and boots the same tree', async () => {
    const root = await mkdtemp(join(work, 'sim-'));
    const device = new SimDevice({ root, hostname: 'sim-delta' });
    await stage(device, root, '1.0.0');
    await mkdir(join(root, 'var/lib/edgeplane-sim'), { recursive: true });
    await writeFile(join(root, 'var/lib/edgeplane-sim/booted-slot'), 'B\n');
    proxy.state.blobBytes = 0;
    const run = await stage(device, root, '2.0.0');
    expect(run.events.map((e) => e.reason)).toEqual(['ImageStaged']);
    // The simulated slot keeps the published image apart from its record: the patch applies to it.
    expect(run.events[0].message).toMatch(/patch from /);
    expect(run.rebuilt).toEqual([slotDigests['2.0.0']]);
    expect(proxy.state.blobBytes).toBe(patchBytes['2.0.0']);
    expect(await readFile(join(root, 'slots/A/rootfs/etc/new.conf'), 'utf8')).toBe('feature = on\n');
    expect(await readFile(join(root, 'slots/A/rootfs/etc/os-release'), 'utf8')).toContain('VERSION_ID=2.0.0');
    expect((await slotsOf(device).readSlot('A'))?.digest).toBe(images['2.0.0'].digest);
  });
});
