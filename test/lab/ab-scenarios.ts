import { expect, it } from 'vitest';
import type { LabDisk, LabFleet, labWaits } from './lab-device.js';
import type { LabVm } from './qemu.js';

export interface AbLab {
  vm: () => LabVm;
  disk: () => LabDisk;
  fleet: () => LabFleet;
  hostName: () => string;
  waits: ReturnType<typeof labWaits>;
  /** Budgets of a boot and of an upgrade (pull, slot write, reboot) on this image under this accelerator. */
  bootMs: number;
  upgradeMs: number;
  /** The firmware enforces Secure Boot: every boot's kernel says so. */
  secureBoot?: boolean;
}

/** Test budgets of the A/B scenarios, for the QEMU leak guard of the run they share. */
export const abBudgets = (bootMs: number, upgradeMs: number) => ({
  powerCut: bootMs + 2 * upgradeMs,
  upgrade: upgradeMs + 10_000,
  fallback: upgradeMs + bootMs + 10_000,
});

/**
 * The A/B scenarios of a registered device (the OS 2 lab's) whose profile pins images 1 (installed),
 * 2 (the upgrade) and 3 (fails its `app-ready` health check): a power cut during the slot write, the
 * upgrade with a one-time trial boot and commit, and the fallback from a failing image. The agent's
 * log is on the serial console.
 */
export function abScenarios(lab: AbLab): void {
  const { until, serialShows } = lab.waits;
  const budgets = abBudgets(lab.bootMs, lab.upgradeMs);
  const images = () => lab.fleet().images;
  const osStatus = () => lab.fleet().osStatus(lab.hostName());

  it(
    'a power cut while the passive partition is written: the next boot is the committed slot and the upgrade starts over',
    async () => {
      const vm = lab.vm();
      const disk = lab.disk();
      await lab.fleet().addProfileRevision(1);
      await lab.fleet().assignRevision(lab.hostName(), 2);
      // Cut the power while slot B is being written: after the agent says it is writing it, at the
      // first block of the slot image reaching the partition. A squashfs slot image is made in a file
      // on the data partition first (mksquashfs: minutes under TCG on a busy machine), then copied in.
      await serialShows(/os: writing Edgeplane OS 2\.0\.0 into slot B/, lab.upgradeMs);
      const deadline = Date.now() + lab.upgradeMs;
      while (!(await disk.slotHasData('root-b'))) {
        vm.assertHealthy();
        if (Date.now() > deadline) throw new Error(`no block of slot B reached the disk within ${lab.upgradeMs / 1000} s of the write starting`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await vm.powerCut();
      // On the disk as the power cut left it: slot B carries no slot record (the agent treats it as
      // empty) and the grubenv arms no trial boot; slot A still holds image 1.
      expect(disk.slotRecord('root-b')).toBeUndefined();
      expect(disk.slotRecord('root-a')).toMatchObject({ digest: images()[0].digest });
      expect(disk.grubenv()).toMatchObject({ active_slot: 'A' });
      expect(disk.grubenv().next_slot ?? '').toBe('');
      vm.start();
      await serialShows('Edgeplane: booting committed slot A', lab.bootMs);
      expect(vm.serial()).not.toContain('one-time trial boot');
      // From the start: pulled and written again (this QEMU run's log).
      await serialShows(/edgeplane-os: .*"version":"1.0.0".* booted from slot A/, lab.bootMs);
      await serialShows(new RegExp(`os: pulling ${images()[1].digest} for slot B`), lab.upgradeMs);
      await serialShows(/os: writing Edgeplane OS 2\.0\.0 into slot B/, lab.upgradeMs);
    },
    budgets.powerCut,
  );

  it(
    'upgrades A/B with a real reboot: a one-time trial boot of slot B, health checks pass, the slot is committed',
    () => expectUpgradeCommitted(lab, lab.upgradeMs),
    budgets.upgrade,
  );

  it(
    'an image whose health check fails boots once, the VM reboots, the boot loader falls back, and the API says why',
    async () => {
      await lab.fleet().addProfileRevision(2);
      await lab.fleet().assignRevision(lab.hostName(), 3);
      const os = await until(
        'the host reports the fallback',
        async () => {
          const s = await osStatus();
          return s?.phase === 'FellBack' && s.message?.includes('app-ready') ? s : undefined;
        },
        lab.upgradeMs + lab.bootMs,
      );
      expect(os).toMatchObject({ digest: images()[1].digest, bootedSlot: 'B', activeSlot: 'B', upToDate: false });
      expect(os.message).toMatch(/health check "app-ready" failed/);
      expect(os.message).toContain('app 3.0.0 is not ready');
      const serial = lab.vm().serial();
      expect(serial).toContain('Edgeplane: one-time trial boot of slot A (committed slot: B)');
      expect(serial).toMatch(/edgeplane-os: .*"version":"3.0.0".* booted from slot A/);
      // After the trial the boot loader started the committed slot again.
      const afterTrial = serial.slice(serial.lastIndexOf('one-time trial boot of slot A'));
      expect(afterTrial).toContain('Edgeplane: booting committed slot B');
    },
    budgets.fallback,
  );
}

/** Waits (up to `timeoutMs`) for image 2 committed in slot B after a one-time trial boot (the profile revision pinning it is assigned). */
async function expectUpgradeCommitted(lab: AbLab, timeoutMs: number): Promise<void> {
  const images = lab.fleet().images;
  const os = await lab.waits.until(
    'the host runs image 2 committed',
    async () => {
      const s = await lab.fleet().osStatus(lab.hostName());
      return s?.upToDate && s.phase === 'Committed' && s.digest === images[1].digest ? s : undefined;
    },
    timeoutMs,
  );
  expect(os).toMatchObject({ digest: images[1].digest, bootedSlot: 'B', activeSlot: 'B', phase: 'Committed' });
  const serial = lab.vm().serial();
  expect(serial).toContain('Edgeplane: one-time trial boot of slot B (committed slot: A)');
  expect(serial).toMatch(/edgeplane-os: .*"version":"2.0.0".* booted from slot B/);
}

/**
 * The A/B upgrade alone (the installer lab's): profile revision 1 pins image 2, assigned to the host
 * running image 1 from slot A; the upgrade is pulled and written to slot B (an upgrade's budget, as
 * in abScenarios' power-cut test), then trial-booted and committed (a boot's budget on top).
 */
export function upgradeScenario(lab: AbLab): void {
  it(
    'upgrades A/B with a real reboot: pulled, written to slot B, a one-time trial boot, health checks pass, the slot is committed',
    async () => {
      await lab.fleet().addProfileRevision(1);
      await lab.fleet().assignRevision(lab.hostName(), 2);
      await expectUpgradeCommitted(lab, lab.upgradeMs + lab.bootMs);
      const serial = lab.vm().serial();
      const trial = serial.slice(serial.lastIndexOf('Edgeplane: one-time trial boot of slot B (committed slot: A)'));
      if (lab.secureBoot) expect(trial).toContain('secureboot: Secure boot enabled');
      // GRUB cleared next_slot itself (save_env) before booting the trial; the agent committed B.
      expect(lab.disk().grubenv()).toMatchObject({ active_slot: 'B' });
      expect(lab.disk().grubenv().next_slot ?? '').toBe('');
    },
    lab.upgradeMs + lab.bootMs + 10_000,
  );
}

/** The recovery scenario (last: it destroys both slots): GRUB falls back to the recovery slot with the installed image. */
export function recoveryScenario(lab: AbLab): void {
  it(
    'when neither slot can be loaded, the boot loader starts the recovery slot with the installed image',
    async () => {
      const vm = lab.vm();
      await vm.powerCut();
      await lab.disk().destroy(['root-a', 'root-b']);
      vm.start();
      await lab.waits.serialShows("Falling back to `Edgeplane OS (recovery)'", lab.bootMs);
      await lab.waits.serialShows(/edgeplane-os: .*"version":"1.0.0".* booted from slot recovery/, lab.bootMs);
      const os = await lab.waits.until(
        'the host reports the recovery boot',
        async () => {
          const s = await lab.fleet().osStatus(lab.hostName());
          return s?.bootedSlot === 'recovery' ? s : undefined;
        },
        lab.bootMs,
      );
      expect(os).toMatchObject({ bootedSlot: 'recovery', digest: lab.fleet().images[0].digest, upToDate: false });
    },
    2 * lab.bootMs + 10_000,
  );
}

/**
 * Under Secure Boot, after upgradeScenario (image 2 committed in slot B): image 3, whose kernel carries
 * no signature (unsignedKernelPackage), is written to slot A like any other, but the firmware chain
 * refuses its kernel at the trial boot, GRUB boots the committed slot again, and the API says why.
 */
export function unsignedKernelScenario(lab: AbLab): void {
  it(
    'an image whose kernel is not signed: the chain refuses it at the trial boot, GRUB boots the committed slot, the API says slot A did not boot and why',
    async () => {
      const fleet = lab.fleet();
      await fleet.addProfileRevision(2);
      await fleet.assignRevision(lab.hostName(), 3);
      const os = await lab.waits.until(
        'the host reports the fallback',
        async () => {
          const s = await fleet.osStatus(lab.hostName());
          return s?.phase === 'FellBack' ? s : undefined;
        },
        lab.upgradeMs + lab.bootMs,
      );
      expect(os).toMatchObject({ digest: fleet.images[1].digest, bootedSlot: 'B', activeSlot: 'B', upToDate: false });
      // The agent knows the slot's kernel carries no signature (read when it wrote the slot) and that the
      // firmware enforces Secure Boot (efivarfs), so it says why the chain refused the slot.
      expect(os.message).toBe(
        'fell back to slot B: slot A did not boot; the boot loader started slot B: Secure Boot is enforced and the kernel of slot A carries no signature, so the firmware chain refused it',
      );
      // The image was written (slot A holds it); its kernel never ran.
      expect(lab.disk().slotRecord('root-a')).toMatchObject({ digest: fleet.images[2].digest });
      const serial = lab.vm().serial();
      const trial = serial.slice(serial.lastIndexOf('Edgeplane: one-time trial boot of slot A (committed slot: B)'));
      expect(trial).toContain('error: bad shim signature');
      expect(trial).toContain("Falling back to `Edgeplane OS (slot B)'");
      expect(trial).toMatch(/edgeplane-os: .*"version":"2.0.0".* booted from slot B/);
      expect(trial).not.toMatch(/"version":"3.0.0".* booted from slot/);
    },
    lab.upgradeMs + lab.bootMs + 10_000,
  );
}
