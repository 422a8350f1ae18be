import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BuiltImage, buildImage } from '@edgeplane/image';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { pushOciLayout, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { LabVm, probeLab } from './qemu.js';

/**
 * The real-device lab: Edgeplane OS images built by `buildImage` (what `edgeplane image build`
 * runs) boot in QEMU with UEFI firmware and GRUB, and the agent inside (LinuxDevice, real
 * partitions, real grubenv, real reboots) is driven through the public API of a real control
 * plane: registration from a seed ISO, an A/B upgrade with a trial boot and commit, a power cut
 * while the passive partition is written, and a fallback from an image whose health check fails.
 * Serial logs are kept in test-artifacts/lab/.
 */
const lab = probeLab();
const skipReason = lab.ok ? '' : lab.reason;
if (!lab.ok) console.warn(`\n[lab] SKIPPED — THE REAL-DEVICE LAB DID NOT RUN: ${skipReason}\n`);
else console.warn(`[lab] booting Edgeplane OS in QEMU with ${lab.accel === 'kvm' ? 'KVM' : 'TCG (software emulation; KVM cannot run guests here)'}`);

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'lab');
/** Slow steps under TCG: a boot is ~20-40 s, writing a slot ~30-60 s. */
const BOOT_MS = 240_000;
const UPGRADE_MS = 360_000;
/**
 * One QEMU run spans several tests (power cut, upgrade, fallback: up to 2 boots and 4 upgrades of
 * budget), so the per-run leak guard covers all of them; vitest's timeouts end a stuck test first.
 */
const LEAK_GUARD_MS = 2 * BOOT_MS + 4 * UPGRADE_MS + 120_000;

describe.skipIf(!lab.ok)(`real-device lab${lab.ok ? '' : ` (SKIPPED: ${skipReason})`}`, () => {
  let t: TestServer;
  let registry: TestRegistry;
  let work: string;
  let vm: LabVm;
  let hostName: string;
  const images: { built: BuiltImage; ref: string; digest: string }[] = [];

  /** The reference the guest pulls: the registry as the guest sees the host (10.0.2.2), pinned by digest. */
  const guestRef = (version: string, digest: string) => `10.0.2.2:${registry.host.split(':')[1]}/edgeplane/os:${version}@${digest}`;

  const host = async () => (await t.api('GET', `/api/v1/edgehosts/${hostName}`)).body;
  /**
   * Polls `fn` until it returns a value; fails at once (with the serial log) when QEMU died or the
   * agent crash-loops, and at the deadline with `what` and the end of the serial log.
   */
  async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      vm.assertHealthy();
      const value = await Promise.resolve()
        .then(fn)
        .catch(() => undefined);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s; serial log ends:\n${vm.serial().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  /** Waits for a line on the serial console of the current QEMU run. */
  const serialShows = (pattern: RegExp | string, timeoutMs: number) =>
    until(`serial console shows ${pattern}`, () => (typeof pattern === 'string' ? vm.serial().includes(pattern) : pattern.test(vm.serial())), timeoutMs);
  const osStatus = async () => (await host()).status?.os;

  /** Byte offset of a partition of the lab disk. */
  const offsetOf = (name: string) => (images[0].built.layout?.partitions.find((p) => p.name === name)?.startMiB ?? 0) * 1024 * 1024;

  /** The slot record (usr/lib/edgeplane/slot.json) of a slot partition, read from the disk file with debugfs. */
  function slotRecord(slot: 'root-a' | 'root-b'): { digest: string } | undefined {
    const r = spawnSync('debugfs', ['-R', 'cat /usr/lib/edgeplane/slot.json', `${images[0].built.disk}?offset=${offsetOf(slot)}`], { encoding: 'utf8' });
    try {
      return JSON.parse(r.stdout) as { digest: string };
    } catch {
      return undefined;
    }
  }

  /** Whether any of the first 16 MiB of a slot partition is written (the fresh disk has zeros there). */
  async function slotHasData(slot: 'root-a' | 'root-b'): Promise<boolean> {
    const fh = await open(images[0].built.disk!, 'r');
    try {
      const buf = Buffer.alloc(16 * 1024 * 1024);
      await fh.read(buf, 0, buf.length, offsetOf(slot));
      return buf.some((b) => b !== 0);
    } finally {
      await fh.close();
    }
  }

  /** The grubenv on the ESP of the disk file (mtools reads the FAT partition in place). */
  function grubenv(): Record<string, string> {
    const file = join(work, 'grubenv.read');
    rmSync(file, { force: true });
    const copied = spawnSync('mcopy', ['-n', '-i', `${images[0].built.disk}@@${offsetOf('esp')}`, '::/EFI/edgeplane/grubenv', file], { encoding: 'utf8' });
    expect(copied.status, copied.stderr).toBe(0);
    const listed = spawnSync('grub-editenv', [file, 'list'], { encoding: 'utf8' }).stdout;
    return Object.fromEntries(
      listed
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  }

  async function publish(version: string, extra: Partial<Parameters<typeof buildImage>[0]> = {}): Promise<void> {
    const built = await buildImage({ base: 'busybox', name: 'Edgeplane OS', version, output: join(work, `image-${version}`), ...extra });
    const digest = await pushOciLayout(built.layoutDir, `${registry.host}/edgeplane/os:${version}`);
    expect(digest).toBe(built.digest);
    images.push({ built, ref: guestRef(version, digest), digest });
  }

  /** Points the host's OS profile at `revision` of lab-os (whose revision N pins image N). */
  async function assignRevision(revision: number): Promise<void> {
    const r = await t.api('PATCH', `/api/v1/edgehosts/${hostName}`, { spec: { osProfile: { name: 'lab-os', revision } } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  }

  async function addProfileRevision(index: number): Promise<void> {
    const spec = { description: 'lab host OS', layers: { os: { image: images[index].ref, insecure: true } } };
    const r =
      index === 0
        ? await t.api('POST', '/api/v1/clusterprofiles', { metadata: { name: 'lab-os' }, spec })
        : await t.api('PUT', '/api/v1/clusterprofiles/lab-os', { metadata: { name: 'lab-os' }, spec });
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
  }

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'ep-lab-'));
    registry = await startRegistry();
    // Image 1 is installed from the disk; 2 is the upgrade; 3 boots but fails its own health check.
    await publish('1.0.0', { disk: true });
    await publish('2.0.0');
    await publish('3.0.0', {
      healthChecks: [
        { name: 'app-ready', type: 'command', command: ['sh', '-c', 'echo "app 3.0.0 is not ready" >&2; exit 1'], retries: 1, timeoutSeconds: 10 },
      ],
    });
    t = await testServer('sqlite', { offlineAfterSeconds: 20 });
    const token = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab' }, spec: { autoApprove: true } });
    expect(token.status).toBe(201);
    const seed = join(work, 'seed.iso');
    const env = { EDGEPLANE_CONFIG: join(work, 'cli.yaml'), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    const made = await cli(
      [
        'installer',
        'seed-iso',
        '--token',
        'lab',
        '--token-secret',
        token.body.status.token,
        '--agent-server',
        `http://10.0.2.2:${new URL(t.url).port}`,
        '-o',
        seed,
      ],
      env,
    );
    expect(made.code, made.out).toBe(0);
    await addProfileRevision(0);
    const serialLog = join(ARTIFACTS, 'serial.log');
    rmSync(serialLog, { force: true });
    vm = new LabVm({ disk: images[0].built.disk!, seedIso: seed, accel: lab.ok ? lab.accel : 'tcg', serialLog, timeoutMs: LEAK_GUARD_MS, uuid: randomUUID() });
  }, 300_000);

  afterAll(async () => {
    await vm?.stop();
    await t?.close();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(
    'boots from the installer disk; the agent registers from the seed ISO and comes online on slot A',
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
      expect(vm.serial()).toContain('Edgeplane: booting committed slot A');
      expect(vm.serial()).toMatch(/edgeplane-os: .*"version":"1.0.0".* booted from slot A/);
      // The installed image is the one the profile pins: assigning revision 1 changes nothing on disk.
      await assignRevision(1);
      const os = await until(
        'slot A is reported committed',
        async () => {
          const s = await osStatus();
          return s?.upToDate && s.phase === 'Committed' ? s : undefined;
        },
        120_000,
      );
      expect(os).toMatchObject({ digest: images[0].digest, bootedSlot: 'A', activeSlot: 'A', phase: 'Committed' });
    },
    BOOT_MS + 150_000,
  );

  it(
    'a power cut while the passive partition is written: the next boot is the committed slot and the upgrade starts over',
    async () => {
      await addProfileRevision(1);
      await assignRevision(2);
      // Cut the power while slot B is being written: after the agent says it is writing it (the serial
      // console carries its log), at the first of mkfs's blocks reaching the disk file.
      await serialShows(/os: writing Edgeplane OS 2\.0\.0 into slot B/, UPGRADE_MS);
      const deadline = Date.now() + 120_000;
      while (!(await slotHasData('root-b'))) {
        vm.assertHealthy();
        if (Date.now() > deadline) throw new Error('no block of slot B reached the disk within 120 s of the write starting');
        await new Promise((r) => setTimeout(r, 50));
      }
      await vm.powerCut();
      // On the disk as the power cut left it: slot B carries no slot record (the agent treats it as
      // empty) and the grubenv arms no trial boot; slot A still holds image 1.
      expect(slotRecord('root-b')).toBeUndefined();
      expect(slotRecord('root-a')).toMatchObject({ digest: images[0].digest });
      expect(grubenv()).toMatchObject({ active_slot: 'A' });
      expect(grubenv().next_slot ?? '').toBe('');
      vm.start();
      await serialShows('Edgeplane: booting committed slot A', BOOT_MS);
      expect(vm.serial()).not.toContain('one-time trial boot');
      // From the start: pulled and written again (this QEMU run's log), then the trial boot of slot B.
      await serialShows(new RegExp(`os: pulling ${images[1].digest} for slot B`), UPGRADE_MS);
      await serialShows(/os: writing Edgeplane OS 2\.0\.0 into slot B/, UPGRADE_MS);
    },
    BOOT_MS + 2 * UPGRADE_MS,
  );

  it(
    'upgrades A/B with a real reboot: a one-time trial boot of slot B, health checks pass, the slot is committed',
    async () => {
      const os = await until(
        'the host runs image 2 committed',
        async () => {
          const s = await osStatus();
          return s?.upToDate && s.phase === 'Committed' && s.digest === images[1].digest ? s : undefined;
        },
        UPGRADE_MS,
      );
      expect(os).toMatchObject({ digest: images[1].digest, bootedSlot: 'B', activeSlot: 'B', phase: 'Committed' });
      const serial = vm.serial();
      expect(serial).toContain('Edgeplane: one-time trial boot of slot B (committed slot: A)');
      expect(serial).toMatch(/edgeplane-os: .*"version":"2.0.0".* booted from slot B/);
    },
    UPGRADE_MS + 10_000,
  );

  it(
    'an image whose health check fails boots once, the VM reboots, the boot loader falls back, and the API says why',
    async () => {
      await addProfileRevision(2);
      await assignRevision(3);
      const os = await until(
        'the host reports the fallback',
        async () => {
          const s = await osStatus();
          return s?.phase === 'FellBack' ? s : undefined;
        },
        UPGRADE_MS + BOOT_MS,
      );
      expect(os).toMatchObject({ digest: images[1].digest, bootedSlot: 'B', activeSlot: 'B', upToDate: false });
      expect(os.message).toMatch(/health check "app-ready" failed/);
      expect(os.message).toContain('app 3.0.0 is not ready');
      const serial = vm.serial();
      expect(serial).toContain('Edgeplane: one-time trial boot of slot A (committed slot: B)');
      expect(serial).toMatch(/edgeplane-os: .*"version":"3.0.0".* booted from slot A/);
      // After the trial the boot loader started the committed slot again.
      const afterTrial = serial.slice(serial.lastIndexOf('one-time trial boot of slot A'));
      expect(afterTrial).toContain('Edgeplane: booting committed slot B');
    },
    UPGRADE_MS + BOOT_MS + 10_000,
  );

  it(
    'when neither slot can be loaded, the boot loader starts the recovery slot with the installed image',
    async () => {
      await vm.powerCut();
      // Destroy both slots' filesystems (their superblocks): GRUB cannot load a kernel from A or B.
      const disk = await open(images[0].built.disk!, 'r+');
      for (const slot of ['root-a', 'root-b']) await disk.write(Buffer.alloc(1024 * 1024), 0, 1024 * 1024, offsetOf(slot));
      await disk.close();
      vm.start();
      await serialShows("Falling back to `Edgeplane OS (recovery)'", BOOT_MS);
      await serialShows(/edgeplane-os: .*"version":"1.0.0".* booted from slot recovery/, BOOT_MS);
      const os = await until(
        'the host reports the recovery boot',
        async () => {
          const s = await osStatus();
          return s?.bootedSlot === 'recovery' ? s : undefined;
        },
        BOOT_MS,
      );
      expect(os).toMatchObject({ bootedSlot: 'recovery', digest: images[0].digest, upToDate: false });
    },
    2 * BOOT_MS + 10_000,
  );
});
