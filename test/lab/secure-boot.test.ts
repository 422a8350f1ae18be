import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defaultCacheDir } from '@edgeplane/image';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { LabDisk, LabFleet, labWaits } from './lab-device.js';
import { LabVm, probeLab } from './qemu.js';

const run = promisify(execFile);

/**
 * Secure Boot in the real-device lab, on the small busybox image: OVMF with Microsoft's keys enrolled
 * and Secure Boot enforced boots the installer disk through Debian's signed shim and GRUB into
 * Debian's signed kernel; the device registers and an A/B upgrade commits under Secure Boot. An
 * image whose kernel has its signature removed (the same kernel after `sbattach --remove`, standing
 * for a custom unsigned build) is written to the passive slot like any other, but the chain refuses
 * its kernel at the trial boot, GRUB falls back to the committed slot, and the API says the trial
 * slot did not boot. Serial logs are kept in test-artifacts/lab/.
 */
const lab = probeLab();
const SB_FILES = ['/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', '/usr/share/OVMF/OVMF_VARS_4M.ms.fd', '/usr/lib/shim/shimx64.efi.signed'];
const sbMissing = SB_FILES.find((f) => !existsSync(f));
const skipReason = !lab.ok ? lab.reason : sbMissing ? `${sbMissing} is missing (Debian: ovmf, shim-signed)` : '';
if (skipReason) console.warn(`\n[lab] SKIPPED — THE SECURE BOOT LAB DID NOT RUN: ${skipReason}\n`);

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'lab');
/** Under TCG the Secure Boot firmware (SMM) is slower than the plain one: a boot is ~40-60 s. */
const BOOT_MS = 240_000;
const UPGRADE_MS = 360_000;
const REGISTER_MS = BOOT_MS + 150_000;
const LEAK_GUARD_MS = REGISTER_MS + 2 * (UPGRADE_MS + BOOT_MS) + 10_000;

describe.skipIf(Boolean(skipReason))(`Secure Boot lab${skipReason ? ` (SKIPPED: ${skipReason})` : ''}`, () => {
  let t: TestServer;
  let registry: TestRegistry;
  let work: string;
  let vm: LabVm;
  let disk: LabDisk;
  let fleet: LabFleet;
  let hostName: string;
  const waits = labWaits(() => vm);
  const osStatus = () => fleet.osStatus(hostName);

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'ep-lab-sb-'));
    registry = await startRegistry();
    t = await testServer('sqlite', { offlineAfterSeconds: 20 });
    fleet = new LabFleet((method, path, body) => t.api(method, path, body), registry, work);
    // Image 1 is installed from the disk (the default boot loader: shim); 2 is the upgrade; 3 carries
    // the same kernel without its signature.
    await fleet.publish('1.0.0', { base: 'busybox', disk: true });
    await fleet.publish('2.0.0', { base: 'busybox' });
    await fleet.publish('3.0.0', { base: 'busybox', kernelPackage: await unsignedKernelPackage(fleet.images[0].built.kernel.package, work) });
    expect(fleet.images.map((i) => i.built.kernel.signed)).toEqual([true, true, false]);
    expect(fleet.images[0].built.bootLoader).toBe('shim');

    const token = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'lab-sb' }, spec: { autoApprove: true } });
    expect(token.status).toBe(201);
    const seed = join(work, 'seed.iso');
    const env = { EDGEPLANE_CONFIG: join(work, 'cli.yaml'), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin };
    const agentServer = `http://10.0.2.2:${new URL(t.url).port}`;
    const made = await cli(
      ['installer', 'seed-iso', '--token', 'lab-sb', '--token-secret', token.body.status.token, '--agent-server', agentServer, '-o', seed],
      env,
    );
    expect(made.code, made.out).toBe(0);
    await fleet.addProfileRevision(0);
    const serialLog = join(ARTIFACTS, 'secure-boot-serial.log');
    rmSync(serialLog, { force: true });
    const built = fleet.images[0].built;
    disk = new LabDisk(built.disk!, () => built.layout, work);
    vm = new LabVm({
      disk: disk.file,
      seedIso: seed,
      accel: lab.ok ? lab.accel : 'tcg',
      serialLog,
      timeoutMs: LEAK_GUARD_MS,
      uuid: randomUUID(),
      firmware: 'secure-boot',
    });
  }, 420_000);

  afterAll(async () => {
    await vm?.stop();
    await t?.close();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(
    'boots with Secure Boot enforced through shim, signed GRUB and the signed kernel; registers and comes online on slot A',
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
      const serial = vm.serial();
      // The kernel's own account: the firmware enforced Secure Boot, so it locked itself down.
      expect(serial).toContain('secureboot: Secure boot enabled');
      expect(serial).toContain('Kernel is locked down from EFI Secure Boot');
      expect(serial).toContain('Edgeplane: booting committed slot A');
      expect(serial).toMatch(/edgeplane-os: .*"version":"1.0.0".* booted from slot A/);
      await fleet.assignRevision(hostName, 1);
      const os = await waits.until(
        'slot A is reported committed',
        async () => {
          const s = await osStatus();
          return s?.upToDate && s.phase === 'Committed' ? s : undefined;
        },
        120_000,
      );
      expect(os).toMatchObject({ digest: fleet.images[0].digest, bootedSlot: 'A', activeSlot: 'A' });
    },
    REGISTER_MS,
  );

  it(
    'an A/B upgrade under Secure Boot: the one-time trial boot of slot B (its grubenv write works in the signed GRUB) commits',
    async () => {
      await fleet.addProfileRevision(1);
      await fleet.assignRevision(hostName, 2);
      const os = await waits.until(
        'the host runs image 2 committed',
        async () => {
          const s = await osStatus();
          return s?.upToDate && s.phase === 'Committed' && s.digest === fleet.images[1].digest ? s : undefined;
        },
        UPGRADE_MS + BOOT_MS,
      );
      expect(os).toMatchObject({ bootedSlot: 'B', activeSlot: 'B' });
      const serial = vm.serial();
      const trial = serial.slice(serial.lastIndexOf('Edgeplane: one-time trial boot of slot B (committed slot: A)'));
      expect(trial).toContain('secureboot: Secure boot enabled');
      expect(trial).toMatch(/edgeplane-os: .*"version":"2.0.0".* booted from slot B/);
      // GRUB cleared next_slot itself (save_env) before booting the trial.
      expect(disk.grubenv()).toMatchObject({ active_slot: 'B' });
      expect(disk.grubenv().next_slot ?? '').toBe('');
    },
    UPGRADE_MS + BOOT_MS + 10_000,
  );

  it(
    'an image whose kernel is not signed: the chain refuses it at the trial boot, GRUB boots the committed slot, the API says slot A did not boot and why',
    async () => {
      await fleet.addProfileRevision(2);
      await fleet.assignRevision(hostName, 3);
      const os = await waits.until(
        'the host reports the fallback',
        async () => {
          const s = await osStatus();
          return s?.phase === 'FellBack' ? s : undefined;
        },
        UPGRADE_MS + BOOT_MS,
      );
      expect(os).toMatchObject({ digest: fleet.images[1].digest, bootedSlot: 'B', activeSlot: 'B', upToDate: false });
      // The agent knows the slot's kernel carries no signature (read when it wrote the slot) and that the
      // firmware enforces Secure Boot (efivarfs), so it says why the chain refused the slot.
      expect(os.message).toBe(
        'fell back to slot B: slot A did not boot; the boot loader started slot B: Secure Boot is enforced and the kernel of slot A carries no signature, so the firmware chain refused it',
      );
      // The image was written (slot A holds it); its kernel never ran.
      expect(disk.slotRecord('root-a')).toMatchObject({ digest: fleet.images[2].digest });
      const serial = vm.serial();
      const trial = serial.slice(serial.lastIndexOf('Edgeplane: one-time trial boot of slot A (committed slot: B)'));
      expect(trial).toContain('error: bad shim signature');
      expect(trial).toContain("Falling back to `Edgeplane OS (slot B)'");
      expect(trial).toMatch(/edgeplane-os: .*"version":"2.0.0".* booted from slot B/);
      expect(trial).not.toMatch(/"version":"3.0.0".* booted from slot/);
    },
    UPGRADE_MS + BOOT_MS + 10_000,
  );
});

/**
 * The kernel package with its kernel's signature removed (sbattach --remove): everything else, the
 * modules included, is the same build. Repacked with fast compression (the builder unpacks it with
 * dpkg-deb -x).
 */
async function unsignedKernelPackage(name: string, work: string): Promise<string> {
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
