import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installLayout } from '@edgeplane/agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { unsignedKernelScenario, upgradeScenario } from './ab-scenarios.js';
import { LabDisk, LabFleet, labWaits, unsignedKernelPackage } from './lab-device.js';
import { LabVm, probeLab } from './qemu.js';

/**
 * The installer and Secure Boot lab: `edgeplane image build --installer` (buildImage with
 * `installer`) makes the installer ISO of the busybox image; a VM with Secure Boot enforced (OVMF with
 * Microsoft's keys enrolled, as a PC ships) boots it from a read-only virtio disk (a USB stick the ISO
 * was written to) next to a blank 8 GiB disk and the seed ISO. The installer picks the blank disk,
 * writes the A/B layout, copies the seed to the data partition and reboots. The next boot is from the
 * disk alone (both ISOs detached), Secure Boot still enforced: Debian's signed shim, GRUB and kernel,
 * slot A, registration from the copied seed, online. Then on the installed disk: an A/B upgrade
 * commits under Secure Boot, and an image whose kernel has its signature removed (the same kernel
 * after `sbattach --remove`, standing for a custom unsigned build) is refused by the chain at its
 * trial boot, GRUB boots the committed slot, and the API says why. Serial logs are kept in
 * test-artifacts/lab/.
 *
 * The installed device power-cycles on every reset (LabVm powerCycleOnReset, as the appliance's VMs
 * do): under TCG a warm reset right after the slot write sometimes left OVMF spinning with no output.
 */
const lab = probeLab();
const SB_FILES = ['/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', '/usr/share/OVMF/OVMF_VARS_4M.ms.fd', '/usr/lib/shim/shimx64.efi.signed'];
const sbMissing = SB_FILES.find((f) => !existsSync(f));
const skipReason = !lab.ok
  ? lab.reason
  : !existsSync('/usr/bin/xorriso')
    ? 'xorriso is not installed (Debian: xorriso)'
    : sbMissing
      ? `${sbMissing} is missing (Debian: ovmf, shim-signed)`
      : '';
if (skipReason) console.warn(`\n[lab] SKIPPED — THE INSTALLER LAB DID NOT RUN: ${skipReason}\n`);

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'lab');
const GiB = 1024 ** 3;
/** Under TCG: the live boot ~60 s (Secure Boot firmware is slower), writing ESP, slot A, recovery and data ~2-3 min. */
const INSTALL_MS = 480_000;
const BOOT_MS = 240_000;
const UPGRADE_MS = 360_000;
const REGISTER_MS = BOOT_MS + 150_000;
/** One QEMU process: a power cycle (every reset) starts a fresh one with a fresh guard. */
const LEAK_GUARD_MS = INSTALL_MS + REGISTER_MS + UPGRADE_MS + 3 * BOOT_MS;

describe.skipIf(Boolean(skipReason))(`installer lab${skipReason ? ` (SKIPPED: ${skipReason})` : ''}`, () => {
  let t: TestServer;
  let registry: TestRegistry;
  let work: string;
  let vm: LabVm;
  let disk: LabDisk;
  let fleet: LabFleet;
  let hostName: string;
  const uuid = randomUUID();
  const waits = labWaits(() => vm);

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'ep-lab-install-'));
    registry = await startRegistry();
    t = await testServer('sqlite', { offlineAfterSeconds: 20 });
    fleet = new LabFleet((method, path, body) => t.api(method, path, body), registry, work);
    // Image 1 is installed from the ISO; 2 is the upgrade; 3 carries the same kernel without its signature.
    await fleet.publish('1.0.0', { base: 'busybox', installer: true });
    await fleet.publish('2.0.0', { base: 'busybox' });
    await fleet.publish('3.0.0', { base: 'busybox', kernelPackage: await unsignedKernelPackage(fleet.images[0].built.kernel.package, work) });
    expect(fleet.images.map((i) => i.built.kernel.signed)).toEqual([true, true, false]);
    const token = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab-install' }, spec: { autoApprove: true } });
    expect(token.status).toBe(201);
    const seed = join(work, 'seed.iso');
    const env = { EDGEPLANE_CONFIG: join(work, 'cli.yaml'), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    const agentServer = `http://10.0.2.2:${new URL(t.url).port}`;
    const made = await cli(
      ['installer', 'seed-iso', '--token', 'lab-install', '--token-secret', token.body.status.token, '--agent-server', agentServer, '-o', seed],
      env,
    );
    expect(made.code, made.out).toBe(0);
    await fleet.addProfileRevision(0);
    // The blank disk: 8 GiB, sparse, all zeros.
    const blank = join(work, 'disk.img');
    writeFileSync(blank, '');
    truncateSync(blank, 8 * GiB);
    const built = fleet.images[0].built;
    const size = (name: string) => built.layout!.partitions.find((p) => p.name === name)!.sizeMiB;
    disk = new LabDisk(blank, () => installLayout(8 * GiB, { espMiB: size('esp'), slotMiB: size('root-a') }), work);
    const serialLog = join(ARTIFACTS, 'installer-serial.log');
    rmSync(serialLog, { force: true });
    vm = new LabVm({
      disk: blank,
      installMedia: built.installerIso!,
      seedIso: seed,
      accel: lab.ok ? lab.accel : 'tcg',
      serialLog,
      timeoutMs: LEAK_GUARD_MS,
      uuid,
      firmware: 'secure-boot',
    });
  }, 600_000);

  afterAll(async () => {
    await vm?.stop();
    await t?.close();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(
    'the installer ISO boots live, picks the blank disk, writes the A/B layout with the seed and reboots',
    async () => {
      vm.start();
      await waits.serialShows('edgeplane-install: installed Edgeplane OS 1.0.0 on /dev/vda', INSTALL_MS);
      const serial = vm.serial();
      // The live system came from the medium, booted through the signed chain: the firmware enforces Secure Boot.
      expect(serial).toContain('edgeplane-initramfs: live system from /dev/vdb');
      expect(serial).toContain('secureboot: Secure boot enabled');
      expect(serial).toContain('edgeplane-install: user-data: /run/edgeplane/seed/user-data');
      expect(serial).toContain('edgeplane-install: target: /dev/vda (8.0 GiB): the largest non-removable disk');
      // The guest reboots by itself once the disk is written.
      await waits.until('the installer reboots the VM', () => vm.events.some((e) => e.event === 'RESET'), 120_000);
      await vm.stop();
      // The same disk, both ISOs detached, Secure Boot still enforced; every reset is a power cycle (see above).
      vm = new LabVm({
        disk: disk.file,
        accel: lab.ok ? lab.accel : 'tcg',
        serialLog: join(ARTIFACTS, 'installer-serial.log'),
        timeoutMs: LEAK_GUARD_MS,
        uuid,
        firmware: 'secure-boot',
        powerCycleOnReset: true,
      });
      // The disk as the installer left it: the A/B layout over the whole disk, image 1 in slot A and recovery, slot A booting.
      const gpt = disk.gpt();
      expect(gpt.partitions.map((p) => p.name)).toEqual(['esp', 'root-a', 'root-b', 'data', 'recovery']);
      const data = gpt.partitions.find((p) => p.name === 'data')!;
      expect((data.start + data.size) * gpt.sectorsize).toBe(8 * GiB - 1024 * 1024);
      expect(disk.slotRecord('root-a')).toMatchObject({ digest: fleet.images[0].digest });
      expect(disk.slotRecord('root-b')).toBeUndefined();
      expect(disk.grubenv()).toMatchObject({ active_slot: 'A' });
    },
    INSTALL_MS + 150_000,
  );

  it(
    'the installed disk alone (ISOs detached) boots slot A with Secure Boot enforced; the agent registers from the copied seed and comes online',
    async () => {
      vm.start();
      const found = await waits.until(
        'the host registers and comes online',
        async () => {
          const list = (await t.api('GET', '/api/v1/edgehosts')).body.items as { metadata: { name: string }; status: { connectivity: string } }[];
          return list.find((h) => h.status.connectivity === 'online');
        },
        REGISTER_MS,
      );
      hostName = found.metadata.name;
      // The kernel's own account: the firmware enforced Secure Boot, so it locked itself down.
      expect(vm.serial()).toContain('secureboot: Secure boot enabled');
      expect(vm.serial()).toContain('Kernel is locked down from EFI Secure Boot');
      expect(vm.serial()).toContain('Edgeplane: booting committed slot A');
      expect(vm.serial()).toMatch(/edgeplane-os: .*"version":"1.0.0".* booted from slot A/);
      expect(vm.serial()).not.toContain('edgeplane-install:');
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
    REGISTER_MS + 130_000,
  );

  const installed = {
    vm: () => vm,
    disk: () => disk,
    fleet: () => fleet,
    hostName: () => hostName,
    waits,
    bootMs: BOOT_MS,
    upgradeMs: UPGRADE_MS,
    secureBoot: true,
  };
  // Under Secure Boot: the one-time trial boot of slot B (its grubenv write works in the signed GRUB) commits.
  upgradeScenario(installed);
  unsignedKernelScenario(installed);
});
