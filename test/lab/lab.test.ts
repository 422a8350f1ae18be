import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { abBudgets, abScenarios, recoveryScenario } from './ab-scenarios.js';
import { LabDisk, LabFleet, labWaits } from './lab-device.js';
import { LabVm, probeLab } from './qemu.js';

/**
 * The real-device lab on the small busybox image: Edgeplane OS images built by `buildImage` (what
 * `edgeplane image build --base busybox` runs) boot in QEMU with UEFI firmware and GRUB, and the agent
 * inside (LinuxDevice, real partitions, real grubenv, real reboots) is driven through the public API
 * of a real control plane: registration from a seed ISO, a power cut while the passive partition is
 * written, an A/B upgrade with a trial boot and commit, a fallback from an image whose health check
 * fails, and a boot of the recovery slot (ab-scenarios.ts, shared with the Edgeplane OS 2 lab).
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
const REGISTER_MS = BOOT_MS + 150_000;
const AB = abBudgets(BOOT_MS, UPGRADE_MS);
/**
 * One QEMU run spans every test (the recovery test restarts it), so the per-run leak guard covers
 * all their budgets added up; vitest's timeouts end a stuck test first.
 */
const LEAK_GUARD_MS = REGISTER_MS + AB.powerCut + AB.upgrade + AB.fallback + 2 * BOOT_MS + 10_000;

describe.skipIf(!lab.ok)(`real-device lab${lab.ok ? '' : ` (SKIPPED: ${skipReason})`}`, () => {
  let t: TestServer;
  let registry: TestRegistry;
  let work: string;
  let vm: LabVm;
  let disk: LabDisk;
  let fleet: LabFleet;
  let hostName: string;
  const waits = labWaits(() => vm);

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'ep-lab-'));
    registry = await startRegistry();
    t = await testServer('sqlite', { offlineAfterSeconds: 20 });
    fleet = new LabFleet((method, path, body) => t.api(method, path, body), registry, work);
    // Image 1 is installed from the disk; 2 is the upgrade; 3 boots but fails its own health check.
    await fleet.publish('1.0.0', { base: 'busybox', disk: true });
    await fleet.publish('2.0.0', { base: 'busybox' });
    await fleet.publish('3.0.0', {
      base: 'busybox',
      healthChecks: [
        { name: 'app-ready', type: 'command', command: ['sh', '-c', 'echo "app 3.0.0 is not ready" >&2; exit 1'], retries: 1, timeoutSeconds: 10 },
      ],
    });
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
    await fleet.addProfileRevision(0);
    const serialLog = join(ARTIFACTS, 'serial.log');
    rmSync(serialLog, { force: true });
    const built = fleet.images[0].built;
    disk = new LabDisk(built.disk!, () => built.layout, work);
    vm = new LabVm({ disk: disk.file, seedIso: seed, accel: lab.ok ? lab.accel : 'tcg', serialLog, timeoutMs: LEAK_GUARD_MS, uuid: randomUUID() });
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
      const found = await waits.until(
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
      await fleet.assignRevision(hostName, 1);
      const os = await waits.until(
        'slot A is reported committed',
        async () => {
          const s = await fleet.osStatus(hostName);
          return s?.upToDate && s.phase === 'Committed' ? s : undefined;
        },
        120_000,
      );
      expect(os).toMatchObject({ digest: fleet.images[0].digest, bootedSlot: 'A', activeSlot: 'A', phase: 'Committed' });
    },
    REGISTER_MS,
  );

  const ab = { vm: () => vm, disk: () => disk, fleet: () => fleet, hostName: () => hostName, waits, bootMs: BOOT_MS, upgradeMs: UPGRADE_MS };
  abScenarios(ab);
  recoveryScenario(ab);
});
