import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { type RegistryRequest, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { LabDisk, LabFleet, labWaits } from './lab-device.js';
import { LabVm, probeLab } from './qemu.js';

/**
 * Delta OS updates on a real device: the busybox Edgeplane OS image in QEMU,
 * one VM booted once, its agent driven through the control plane's API. The device pulls through a
 * proxy in front of the lab registry that counts the blob bytes it serves (the bytes the device
 * downloads) and breaks one response of each kind on purpose:
 *  - 1.0.0 -> 2.0.0 by delta (the chunk index `publishDelta` pushed, what `edgeplane image delta`
 *    runs): the first chunk of the first pack range arrives corrupted and is fetched again alone,
 *    a later pack range is cut off halfway and the download resumes on the agent's next attempt
 *    without fetching again what it had; the whole update moves far fewer bytes than the layer;
 *  - 2.0.0 -> 3.0.0 with no delta published: the whole image, the reason in the host's events.
 * The images differ as small updates do: version strings and one changed file.
 */
const lab = probeLab();
const skipReason = lab.ok ? '' : lab.reason;
if (skipReason) console.warn(`\n[delta-lab] SKIPPED — THE REAL-DEVICE DELTA LAB DID NOT RUN: ${skipReason}\n`);

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'lab');
/** Slow steps under TCG on the busybox image; a delta update also reads and chunks its seed slot. */
const BOOT_MS = 240_000;
const UPGRADE_MS = 360_000;
const DELTA_UPGRADE_MS = 540_000;
const REGISTER_MS = BOOT_MS + 150_000;
const SLOT_MIB = 256;
const LEAK_GUARD_MS = REGISTER_MS + DELTA_UPGRADE_MS + UPGRADE_MS + 60_000;

/** Body bytes of the blob GETs in the registry's access log. */
const blobBytes = (requests: RegistryRequest[]) =>
  requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:')).reduce((sum, r) => sum + r.bytes, 0);

interface Served {
  blob: string;
  start: number;
  end: number;
  /** Bytes sent: all of the range, or half when it was cut off. */
  sent: number;
  action?: 'corrupt' | 'cut';
}

/**
 * A pass-through in front of the lab registry that records what it serves, body bytes per blob
 * request (the registry's own access log says what it sent the proxy: the whole range, also of a
 * response the proxy cuts off). `decide` may corrupt a pack range response (every
 * byte of its first chunk flipped) or cut it off after half its body (the connection closed, as a
 * link that drops does).
 */
async function registryProxy(registry: TestRegistry) {
  const state = {
    /** Blob GETs served, in order. */
    served: [] as Served[],
    decide: undefined as undefined | ((blob: string, start: number, length: number) => { action: 'corrupt'; flip: number } | { action: 'cut' } | undefined),
  };
  const server: Server = createServer(async (req, res) => {
    const headers: Record<string, string> = {};
    for (const h of ['accept', 'range', 'content-type']) if (req.headers[h]) headers[h] = String(req.headers[h]);
    const path = req.url ?? '';
    const up = await fetch(`${registry.url}${path}`, { method: req.method, headers, redirect: 'manual' }).catch(() => undefined);
    if (!up) return void res.destroy();
    let body = Buffer.from(await up.arrayBuffer());
    const out: Record<string, string> = {};
    for (const h of ['content-type', 'content-range', 'docker-content-digest', 'location']) {
      const v = up.headers.get(h);
      if (v) out[h] = v;
    }
    res.writeHead(up.status, { ...out, 'content-length': String(body.length) });
    const blob = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(path)?.[1];
    if (!blob || req.method !== 'GET') return void res.end(req.method === 'HEAD' ? undefined : body);
    const range = /^bytes=(\d+)-(\d+)$/.exec(headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const decision = range && up.status === 206 ? state.decide?.(blob, start, body.length) : undefined;
    const served: Served = { blob, start, end: start + body.length, sent: body.length, action: decision?.action };
    state.served.push(served);
    if (decision?.action === 'cut') {
      served.sent = body.length >> 1;
      res.write(body.subarray(0, served.sent), () => res.destroy());
      return;
    }
    if (decision?.action === 'corrupt') {
      body = Buffer.from(body);
      for (let i = 0; i < decision.flip; i++) body[i] ^= 0xff;
    }
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    state,
    bytes: (from = 0) => state.served.slice(from).reduce((sum, s) => sum + s.sent, 0),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe.skipIf(!!skipReason)(`delta OS updates in the real-device lab${skipReason ? ` (SKIPPED: ${skipReason})` : ''}`, () => {
  let t: TestServer;
  let registry: TestRegistry;
  let proxy: Awaited<ReturnType<typeof registryProxy>>;
  let work: string;
  let vm: LabVm;
  let fleet: LabFleet;
  let hostName: string;
  let delta: Awaited<ReturnType<typeof oci.delta.publishDelta>>;
  const layerBytes: number[] = [];
  const waits = labWaits(() => vm);
  const { until, serialShows } = waits;
  const osStatus = () => fleet.osStatus(hostName);
  const events = async () =>
    (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.kind=EdgeHost,involvedObject.name=${hostName}&limit=500`)).body.items.map(
      (e: { spec: { type: string; reason: string; message: string } }) => e.spec,
    ) as { type: string; reason: string; message: string }[];
  const client = () => new oci.RegistryClient({ registry: registry.host, repository: 'edgeplane/os', insecure: true });

  beforeAll(async () => {
    const t0 = Date.now();
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'ep-delta-lab-'));
    registry = await startRegistry({ accessLog: true });
    proxy = await registryProxy(registry);
    t = await testServer('sqlite', { offlineAfterSeconds: 20 });
    fleet = new LabFleet((method, path, body) => t.api(method, path, body), registry, work);
    const release = (v: string) => ({ 'etc/edgeplane-lab/release': `lab release ${v}\n` });
    // Slots of 256 MiB (the image's tree is ~150 MiB): a delta update reads and chunks its seed
    // slot whole, the slowest step under TCG.
    await fleet.publish('1.0.0', { base: 'busybox', disk: true, slotMiB: SLOT_MIB, files: release('1.0.0') });
    await fleet.publish('2.0.0', { base: 'busybox', files: release('2.0.0') });
    await fleet.publish('3.0.0', { base: 'busybox', files: release('3.0.0') });
    const t1 = Date.now();
    // The delta of 2.0.0 only: its chunk index (the installer wrote slot A with plain mkfs, so a
    // patch from the published 1.0.0 slot image would not apply); 3.0.0 has none.
    delta = await oci.delta.publishDelta({ to: `${registry.host}/edgeplane/os:2.0.0`, slotSizeBytes: SLOT_MIB * 1024 * 1024, log: () => undefined });
    expect(fleet.images[0].built.layout?.partitions.find((p) => p.name === 'root-b')?.sizeMiB).toBe(SLOT_MIB);
    for (const image of fleet.images) {
      const manifest = JSON.parse((await client().getManifest(image.digest)).bytes.toString()) as { layers: { size: number }[] };
      layerBytes.push(manifest.layers.reduce((s, l) => s + l.size, 0));
      // The device pulls through the proxy (10.0.2.2 is the host as the guest sees it).
      image.ref = image.ref.replace(`:${registry.host.split(':')[1]}/`, `:${proxy.port}/`);
    }
    console.warn(
      `[delta-lab] setup: 3 images built and pushed in ${((t1 - t0) / 1000).toFixed(0)} s, the delta of 2.0.0 published in ${((Date.now() - t1) / 1000).toFixed(0)} s ` +
        `(slot image ${delta.slotBytes} bytes, ${delta.chunks} chunks, ${delta.uploadedBytes} bytes of chunks, index ${delta.indexBytes}); layers ${layerBytes.join(', ')} bytes`,
    );
    const token = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'delta-lab' }, spec: { autoApprove: true } });
    expect(token.status).toBe(201);
    const seed = join(work, 'seed.iso');
    const env = { EDGEPLANE_CONFIG: join(work, 'cli.yaml'), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    const args = ['installer', 'seed-iso', '--token', 'delta-lab', '--token-secret', token.body.status.token];
    const made = await cli([...args, '--agent-server', `http://10.0.2.2:${new URL(t.url).port}`, '-o', seed], env);
    expect(made.code, made.out).toBe(0);
    await fleet.addProfileRevision(0);
    const serialLog = join(ARTIFACTS, 'delta-serial.log');
    rmSync(serialLog, { force: true });
    const built = fleet.images[0].built;
    const disk = new LabDisk(built.disk!, () => built.layout, work);
    // Every reset is a power cycle (as appliance VMs have it; see qemu.ts): both upgrades reboot right after a slot write.
    vm = new LabVm({
      disk: disk.file,
      seedIso: seed,
      accel: lab.ok ? lab.accel : 'tcg',
      serialLog,
      timeoutMs: LEAK_GUARD_MS,
      uuid: randomUUID(),
      powerCycleOnReset: true,
    });
  }, 600_000);

  afterAll(async () => {
    await vm?.stop();
    await proxy?.close();
    await t?.close();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Pins image `index` (profile revision index+1) on the host and waits until it runs it, committed on `slot`. */
  async function upgrade(index: number, slot: 'A' | 'B', timeoutMs: number) {
    await fleet.addProfileRevision(index);
    await fleet.assignRevision(hostName, index + 1);
    return until(
      `the host runs image ${index + 1} committed on slot ${slot}`,
      async () => {
        const s = await osStatus();
        return s?.upToDate && s.phase === 'Committed' && s.digest === fleet.images[index].digest && s.bootedSlot === slot ? s : undefined;
      },
      timeoutMs,
    );
  }

  it(
    'boots from the installer disk and comes online, committed on slot A',
    async () => {
      vm.start();
      const found = await until(
        'the host registers and comes online',
        async () => {
          const list = (await t.api('GET', '/api/v1/edgehosts')).body.items as { metadata: { name: string }; status: { connectivity: string } }[];
          return list.find((h) => h.status.connectivity === 'online');
        },
        BOOT_MS,
      );
      hostName = found.metadata.name;
      await fleet.assignRevision(hostName, 1);
      await until(
        'slot A is reported committed',
        async () => {
          const s = await osStatus();
          return s?.upToDate && s.phase === 'Committed' && s.digest === fleet.images[0].digest ? s : undefined;
        },
        120_000,
      );
    },
    REGISTER_MS,
  );

  it(
    '1.0.0 -> 2.0.0 by delta: a corrupted chunk is fetched again, a cut-off download resumes, far fewer bytes than the layer',
    async () => {
      const found = await oci.delta.findDeltaManifest(client(), fleet.images[1].digest);
      expect(found?.packs).toHaveLength(1);
      const index = await oci.delta.loadIndex(client(), found!);
      const pack = found!.packs[0];
      const chunkAt = new Map(index.entries.map((e) => [e.packOffset, e]));
      let corrupted: { start: number; length: number } | undefined;
      let cutting = false;
      proxy.state.decide = (blob, start) => {
        if (blob !== pack) return undefined;
        const first = chunkAt.get(start);
        if (!corrupted && first) {
          corrupted = { start, length: first.packLength };
          return { action: 'corrupt', flip: first.packLength };
        }
        // Not the corrupted chunk's own refetch: the next range is cut off halfway.
        if (!cutting && start !== corrupted?.start) {
          cutting = true;
          return { action: 'cut' };
        }
        return undefined;
      };
      const from = proxy.state.served.length;
      const logged = registry.requests().length;
      const t0 = Date.now();
      const upgraded = upgrade(1, 'B', DELTA_UPGRADE_MS);
      upgraded.catch(() => undefined); // awaited below; a failure before that is the one reported
      await serialShows(/os: delta update of slot B/, UPGRADE_MS);
      await serialShows(/os: the delta download for slot B was interrupted; it resumes on the next attempt: .*cut off/, DELTA_UPGRADE_MS);
      const cut = proxy.state.served.find((s) => s.action === 'cut');
      const os = await upgraded;
      const seconds = (Date.now() - t0) / 1000;
      proxy.state.decide = undefined;
      expect(os).toMatchObject({ bootedSlot: 'B', activeSlot: 'B', phase: 'Committed' });
      expect(vm.serial()).toMatch(/edgeplane-os: .*"version":"2.0.0".* booted from slot B/);

      const served = proxy.state.served.slice(from);
      const packRanges = served.filter((s) => s.blob === pack);
      const evs = await events();
      const staged = evs.find((e) => e.reason === 'ImageStaged' && e.message.includes(fleet.images[1].digest));
      // (a) What the registry served for the whole update (index, packs, the refetch, the cut-off half).
      const total = proxy.bytes(from);
      const packBytes = packRanges.reduce((sum, s) => sum + s.sent, 0);
      console.warn(
        `[delta-lab] 1.0.0 -> 2.0.0 by delta in ${seconds.toFixed(0)} s: ${total} bytes served (${packBytes} of chunk packs in ${packRanges.length} range requests, ` +
          `cut-off half ${cut?.sent}, refetched chunk ${corrupted?.length}), the layer is ${layerBytes[1]} bytes (${(layerBytes[1] / total).toFixed(1)}x), the slot image ${delta.slotBytes}; ${staged?.message}`,
      );
      expect(served.every((s) => s.blob === pack || s.blob === found!.manifest.layers[0].digest)).toBe(true);
      expect(total * 4).toBeLessThan(layerBytes[1]);
      // The registry's own access log agrees: its blob responses for the update (whole ranges, the cut
      // one included) add up to at least what reached the device, and still under a quarter of the layer.
      const registryBytes = blobBytes(registry.requests().slice(logged));
      expect(registryBytes).toBeGreaterThanOrEqual(total);
      expect(registryBytes * 4).toBeLessThan(layerBytes[1]);
      // (b) The corrupted chunk was detected by its sha256 and fetched again alone, once.
      expect(corrupted).toBeDefined();
      expect(packRanges.filter((s) => s.start === corrupted!.start && s.end === corrupted!.start + corrupted!.length && !s.action)).toHaveLength(1);
      // (c) The cut-off range was asked for again; no range served whole before the cut was.
      expect(cut).toBeDefined();
      const cutAt = served.indexOf(cut!);
      const before = packRanges.filter((s) => served.indexOf(s) < cutAt && !s.action);
      const after = packRanges.filter((s) => served.indexOf(s) > cutAt);
      expect(after.some((s) => s.start <= cut!.start && cut!.start < s.end)).toBe(true);
      const again = after.filter((s) => before.some((b) => s.start < b.end && b.start < s.end));
      expect(again).toEqual([]);
      expect(evs.filter((e) => e.reason === 'ChunkRefetched')).toEqual([
        expect.objectContaining({ type: 'Warning', message: expect.stringMatching(/failed its check .*fetching it again/) }),
      ]);
      expect(evs.some((e) => e.reason === 'DeltaFallback')).toBe(false);
      // The attempt that finished counts what it downloaded (the refetch was in the attempt cut off).
      const [, downloaded, reused] = /by delta update \((\d+) bytes downloaded, (\d+) bytes reused from the device's slots\)/.exec(staged?.message ?? '') ?? [];
      expect(Number(downloaded)).toBeGreaterThan(0);
      expect(Number(downloaded)).toBeLessThan(total);
      expect(Number(reused)).toBeGreaterThan(delta.slotBytes / 2);
    },
    DELTA_UPGRADE_MS + 10_000,
  );

  it(
    '2.0.0 -> 3.0.0 without a delta: the whole image, the reason in the host status and events',
    async () => {
      const from = proxy.state.served.length;
      const logged = registry.requests().length;
      const messages = new Set<string>();
      const watch = setInterval(() => {
        void osStatus().then(
          (s) => s?.message && messages.add(s.message),
          () => undefined,
        );
      }, 500);
      const t0 = Date.now();
      try {
        await upgrade(2, 'A', UPGRADE_MS);
      } finally {
        clearInterval(watch);
      }
      const seconds = (Date.now() - t0) / 1000;
      const reason = `no delta artifact is published for ${fleet.images[2].digest}`;
      const fallback = (await events()).filter((e) => e.reason === 'DeltaFallback');
      expect(fallback).toEqual([expect.objectContaining({ type: 'Normal', message: `pulling the whole image: ${reason}` })]);
      expect([...messages].some((m) => m.includes(`(whole image: ${reason})`))).toBe(true);
      const total = proxy.bytes(from);
      console.warn(`[delta-lab] 2.0.0 -> 3.0.0, whole image in ${seconds.toFixed(0)} s: ${total} bytes served, the layer is ${layerBytes[2]} bytes`);
      expect(total).toBeGreaterThanOrEqual(layerBytes[2]);
      expect(blobBytes(registry.requests().slice(logged))).toBeGreaterThanOrEqual(layerBytes[2]);
    },
    UPGRADE_MS + 10_000,
  );
});
