import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BuiltImage, buildImage } from '@edgeplane/image';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';
import { startSwtpm, TpmTestDevice } from '../support/swtpm.js';
import { LabDisk, labSeed, labWaits } from './lab-device.js';
import { LabVm, probeLab } from './qemu.js';

/**
 * TPM-bound device identity in the real-device lab, on the small busybox image: QEMU with a TPM 2.0
 * (swtpm behind tpm-crb) boots the installer disk, the agent makes its key in the TPM through the
 * image's tpm2-tools and /dev/tpmrm0 and registers as `identity: tpm`. The same disk copied to a
 * second machine (same SMBIOS UUID, another TPM) cannot act as the host: its TPM refuses the key, and
 * a key of that TPM is refused by the server; the original boots and connects again. A token with
 * requireTpm refuses the image booted without a TPM. One VM at a time. Serial logs in test-artifacts/lab/.
 */
const lab = probeLab();
const tpmMissing = ['swtpm', 'swtpm_setup', 'tpm2'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
const skipReason = !lab.ok ? lab.reason : tpmMissing ? `${tpmMissing} is not installed (Debian: swtpm, swtpm-tools, tpm2-tools)` : '';
if (skipReason) console.warn(`\n[lab] SKIPPED — THE TPM LAB DID NOT RUN: ${skipReason}\n`);

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'lab');
/** A boot under TCG is ~20-40 s; registering adds the TPM key, the EK and the credential activation. */
const BOOT_MS = 240_000;
const REGISTER_MS = BOOT_MS + 120_000;
const LEAK_GUARD_MS = REGISTER_MS + 10_000;

type Host = {
  metadata: { name: string };
  status: {
    state: string;
    connectivity: string;
    deviceUid: string;
    keyFingerprint: string;
    pendingKeyFingerprint?: string;
    identity?: { kind: string; ekFingerprint?: string; ekPublicKey?: string; ekCertificate?: string };
  };
};

describe.skipIf(Boolean(skipReason))(`TPM lab${skipReason ? ` (SKIPPED: ${skipReason})` : ''}`, () => {
  let t: TestServer;
  let work: string;
  let built: BuiltImage;
  /** The disk as built, never booted: each machine starts from a copy of it. */
  let pristine: string;
  let seed: string;
  let vm: LabVm | undefined;
  /** The first machine: its disk, TPM state and SMBIOS UUID. */
  const a = { disk: '', tpm: '', uuid: randomUUID() };
  let original: Host;
  const waits = labWaits(() => vm!);

  const hosts = async () => (await t.api('GET', '/api/v1/edgehosts')).body.items as Host[];
  const host = async (name: string) => (await t.api('GET', `/api/v1/edgehosts/${name}`)).body as Host;
  const copyDisk = (from: string, to: string) => {
    const r = spawnSync('cp', ['--sparse=always', from, to], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  };
  const boot = (name: string, options: { disk: string; uuid: string; tpm?: string; seedIso?: string }) => {
    const serialLog = join(ARTIFACTS, `tpm-${name}-serial.log`);
    rmSync(serialLog, { force: true });
    vm = new LabVm({
      disk: options.disk,
      seedIso: options.seedIso ?? seed,
      accel: lab.ok ? lab.accel : 'tcg',
      serialLog,
      timeoutMs: LEAK_GUARD_MS,
      uuid: options.uuid,
      ...(options.tpm ? { tpm: { stateDir: options.tpm } } : {}),
    });
    vm.start();
    return vm;
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'ep-lab-tpm-'));
    t = await testServer('sqlite', { offlineAfterSeconds: 20 });
    built = await buildImage({ name: 'Edgeplane OS', version: '1.0.0', output: join(work, 'image'), base: 'busybox', disk: true });
    pristine = built.disk!;
    seed = await labSeed(t, work, 'lab-tpm', { autoApprove: true });
    a.disk = join(work, 'disk-a.img');
    a.tpm = join(work, 'tpm-a');
    copyDisk(pristine, a.disk);
  }, 300_000);

  afterAll(async () => {
    await vm?.stop();
    await t?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(
    'with a TPM attached, the agent makes its key in the TPM and the host registers with identity: tpm and that TPM’s EK',
    async () => {
      boot('a', { disk: a.disk, uuid: a.uuid, tpm: a.tpm });
      original = await waits.until(
        'the host registers and comes online',
        async () => (await hosts()).find((h) => h.status.connectivity === 'online'),
        REGISTER_MS,
      );
      expect(original.status.deviceUid).toBe(a.uuid);
      expect(original.status.identity).toMatchObject({ kind: 'tpm', ekFingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) });
      // swtpm_setup provisioned an EK certificate (NV 0x01c00002); the agent read it and it certifies this EK.
      expect(original.status.identity?.ekCertificate).toContain('BEGIN CERTIFICATE');
      expect(vm!.serial()).toContain('created the device identity key in the TPM');
      expect(vm!.serial()).not.toContain('no TPM 2.0 found');
      // The EK the host records is the one of the TPM state the VM ran with: read it from that TPM
      // (served on the host while the VM is off) with the agent's own code.
      await vm!.stop();
      const tpm = await startSwtpm({ stateDir: a.tpm });
      try {
        const probe = await TpmTestDevice.create(tpm);
        const der = createPublicKey(probe.claim.ekPublicKey).export({ type: 'spki', format: 'der' });
        expect(createHash('sha256').update(der).digest('hex')).toBe(original.status.identity?.ekFingerprint);
      } finally {
        await tpm.stop();
      }
    },
    REGISTER_MS + 60_000,
  );

  it(
    'the disk copied to a machine with another TPM (same SMBIOS UUID) cannot connect as the host; the original still does',
    async () => {
      const name = original.metadata.name;
      await waitFor(async () => (await host(name)).status.connectivity === 'offline', 60_000, 500);
      const b = { disk: join(work, 'disk-b.img'), tpm: join(work, 'tpm-b') };
      copyDisk(a.disk, b.disk);
      boot('copy', { disk: b.disk, uuid: a.uuid, tpm: b.tpm });
      // The agent on the copy: the other TPM will not load the key, so it stops instead of making a new one.
      await waits.serialShows("holds a key this device's TPM cannot load", BOOT_MS);
      expect(vm!.serial()).toMatch(/tpm2_load failed/);
      expect(vm!.serial()).not.toContain('created the device identity key in the TPM');
      expect(await host(name)).toMatchObject({
        status: {
          connectivity: 'offline',
          keyFingerprint: original.status.keyFingerprint,
          identity: { kind: 'tpm', ekFingerprint: original.status.identity?.ekFingerprint },
        },
      });
      expect((await host(name)).status.pendingKeyFingerprint).toBeUndefined();
      await vm!.stop();
      // The copy carries the registration and the TPM-wrapped key blobs, and no private key (read after the
      // copy's boot replayed the data partition's journal: debugfs does not).
      const identity = JSON.parse(new LabDisk(b.disk, () => built.layout, work).dataFile('agent/identity.json') ?? '{}');
      expect(identity).toMatchObject({ registration: { hostName: name, deviceUid: a.uuid }, tpm: { public: expect.any(String), private: expect.any(String) } });
      expect(identity.privateKey).toBeUndefined();

      // What the copy's machine can sign with is a key of its own TPM: the server refuses it for the host.
      const tpm = await startSwtpm({ stateDir: b.tpm });
      try {
        const copyKey = await TpmTestDevice.create(tpm, a.uuid);
        const refused = await connect(t.url, await copyKey.connectToken(name)).then(
          ({ ws }) => {
            ws.close();
            return { status: 101, code: undefined };
          },
          (e: { status: number; body?: { error?: { code?: string } } }) => ({ status: e.status, code: e.body?.error?.code }),
        );
        expect(refused).toEqual({ status: 401, code: 'ConnectTokenInvalid' });
      } finally {
        await tpm.stop();
      }
      expect(await host(name)).toMatchObject({ status: { keyFingerprint: original.status.keyFingerprint, identity: { kind: 'tpm' } } });
      expect((await hosts()).length).toBe(1);

      // The original machine, its own TPM: online again as the same host with the same key.
      boot('a-again', { disk: a.disk, uuid: a.uuid, tpm: a.tpm });
      await waits.until('the original host is online again', async () => (await host(name)).status.connectivity === 'online', BOOT_MS);
      expect(await host(name)).toMatchObject({ status: { keyFingerprint: original.status.keyFingerprint, identity: { kind: 'tpm' } } });
      expect(vm!.serial()).not.toContain('cannot load');
      await vm!.stop();
    },
    3 * BOOT_MS + 120_000,
  );

  it(
    'a token with requireTpm refuses the image booted without a TPM (TpmIdentityRequired) and writes nothing',
    async () => {
      const required = await labSeed(t, work, 'lab-tpm-required', { autoApprove: true, requireTpm: true });
      const before = (await hosts()).map((h) => ({ name: h.metadata.name, key: h.status.keyFingerprint, state: h.status.state }));
      const disk = join(work, 'disk-c.img');
      copyDisk(pristine, disk);
      const uuid = randomUUID();
      boot('no-tpm', { disk, uuid, seedIso: required });
      await waits.serialShows('registration refused: TpmIdentityRequired', BOOT_MS);
      expect(vm!.serial()).toContain('no TPM 2.0 found: the device identity key is a file key');
      const after = await hosts();
      expect(after.map((h) => ({ name: h.metadata.name, key: h.status.keyFingerprint, state: h.status.state }))).toEqual(before);
      expect(after.some((h) => h.status.deviceUid === uuid)).toBe(false);
      const token = await t.api('GET', '/api/v1/registrationtokens/lab-tpm-required');
      expect(token.body.status).toMatchObject({ state: 'active', uses: 0 });
    },
    BOOT_MS + 60_000,
  );
});
