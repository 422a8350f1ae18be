import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverTrust } from '@edgeplane/agent/tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { cli } from '../support/cli-process.js';
import { pushOciLayout, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { makeTestPki, type TestPki } from '../support/tls.js';
import { abBudgets, abScenarios, recoveryScenario } from './ab-scenarios.js';
import { type LabApi, LabDisk, LabFleet, labWaits } from './lab-device.js';
import { type NtpServer, ntpUnavailable, startNtpServer } from './ntp.js';
import { buildHelloImage } from './oci-hello.js';
import { LabVm, probeLab } from './qemu.js';
import { decodeScreenQr, ocrScreen, tesseractInstalled } from './screen.js';

/**
 * The real-device lab on Edgeplane OS 2 (the Debian-based image): systemd, cloud-init, chrony,
 * containerd and the agent on real partitions with a real grubenv and real reboots, driven through
 * the public API of a real control plane over HTTPS with a CA made for the run that reaches the
 * device only through the seed. The host side of the lab network (QEMU user networking: the host is
 * 10.0.2.2) also serves NTP (chronyd) and an OCI registry. Scenarios: pairing at the edge (the code
 * on the screen, tty0, and the serial console, ttyS0) and registration with the seed's static
 * address, time server and private CA; the data partition grown to fill an 8 GiB disk; a container
 * pulled and run by containerd; the A/B scenarios (ab-scenarios.ts, shared with the installer lab); a
 * trial boot that hangs, reset by the watchdog; a boot of the recovery slot.
 * Serial logs are kept in test-artifacts/lab-os2/; per-scenario times are printed at the end.
 */
const lab = probeLab();
const skipReason = !lab.ok
  ? lab.reason
  : (ntpUnavailable() ?? (tesseractInstalled() ? '' : 'tesseract is not installed (Debian: tesseract-ocr): it reads the pairing code off the screen'));
if (skipReason) console.warn(`\n[lab os2] SKIPPED — THE OS 2 LAB DID NOT RUN: ${skipReason}\n`);
else
  console.warn(
    `[lab os2] booting Edgeplane OS 2 in QEMU with ${lab.ok && lab.accel === 'kvm' ? 'KVM' : 'TCG (software emulation; KVM cannot run guests here)'}`,
  );

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'lab-os2');
/** The lab network as the guest sees it (QEMU user networking). */
const HOST_IP = '10.0.2.2';
const GUEST_IP = '10.0.2.50';
/** The NIC is `-device virtio-net-pci,acpi-index=1`: systemd's predictable name is eno1. */
const GUEST_NIC = 'eno1';
/** The device's disk: the installer disk written to the start of a blank 8 GiB disk. */
const DISK_BYTES = 8 * 1024 ** 3;
/** Slow steps under TCG on a busy 2-core machine: a boot (firmware, kernel, systemd, cloud-init, the agent), pulling and writing a slot. */
const BOOT_MS = 480_000;
const UPGRADE_MS = 900_000;
const EXEC_MS = 180_000;
const AB = abBudgets(BOOT_MS, UPGRADE_MS);
const T = { register: BOOT_MS + 150_000, device: 3 * EXEC_MS, container: EXEC_MS + 10_000, watchdog: UPGRADE_MS + 2 * BOOT_MS + 10_000 };
/** One QEMU run spans every test up to the recovery test: its leak guard covers their budgets added up. */
const LEAK_GUARD_MS = T.register + T.device + T.container + AB.powerCut + AB.upgrade + AB.fallback + T.watchdog + 2 * BOOT_MS;

/**
 * Glyphs of the console's 8x16 VGA font that tesseract reads as one another, each mapped to one
 * member: a run read BVVLV9BS as BUULUSES (this font's V has a flat-looking bottom), another S6KA3SRL
 * as S6KA3SSRL.
 */
const OCR_ALIKE: Record<string, string> = { U: 'V', '5': 'S', '9': 'S', E: 'B', '8': 'B' };
const alike = (text: string) => text.replace(/[U59E8]/g, (c) => OCR_ALIKE[c]);

/**
 * The pairing code is in the screen's text: one of the words the OCR reads is the code, up to the
 * glyphs the OCR confuses and one character dropped, doubled or misread. Another code is not that
 * close by chance: codes are 8 random characters out of 31. (The QR code under it is decoded
 * exactly; this checks the line a technician reads.) Words are split at white space only: a glyph
 * may be misread as punctuation (a run read YU7TURXQ as YU?TURXQ), which is then one misread
 * character, not the end of a word.
 */
function screenTextHasCode(read: string, code: string): boolean {
  return read
    .split(/\s+/)
    .map((word) => word.replace(/^[^0-9A-Za-z]+|[^0-9A-Za-z]+$/g, ''))
    .filter((word) => word.length >= code.length - 1 && word.length <= code.length + 1)
    .some((word) => editDistance(alike(word.toUpperCase()), alike(code)) <= 1);
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

describe.skipIf(!!skipReason)(`real-device lab, Edgeplane OS 2${skipReason ? ` (SKIPPED: ${skipReason})` : ''}`, () => {
  let t: TestServer;
  let pki: TestPki;
  let registry: TestRegistry;
  let ntp: NtpServer;
  let work: string;
  let disk: LabDisk;
  let fleet: LabFleet;
  let vm: LabVm;
  let hostName: string;
  let cliEnv: Record<string, string>;
  let api: LabApi;
  let helloRef: string;
  const HELLO_LINE = `edgeplane-lab: hello from a container ${randomUUID().slice(0, 8)}`;
  const waits = labWaits(() => vm);
  const { until, serialShows } = waits;
  const times: { name: string; seconds: number }[] = [];
  let started = 0;
  const serverPort = () => new URL(t.url).port;

  /** `edgeplane exec HOST -- sh -c SCRIPT`, the way an operator runs a command on a device. */
  const exec = (script: string) => cli(['exec', hostName, '--reason', 'lab check', '--', 'sh', '-c', script], cliEnv);
  /** Runs `script` through exec until its output satisfies `ok` (the state is reached), and returns that output. */
  const execUntil = (what: string, script: string, ok: (stdout: string) => boolean, timeoutMs = EXEC_MS) =>
    until(
      what,
      async () => {
        const r = await exec(script);
        if (r.code === 0 && ok(r.stdout)) return r.stdout;
        throw new Error(`exit ${r.code}: ${r.out.slice(-1500)}`);
      },
      timeoutMs,
    );

  async function newToken(name: string): Promise<string> {
    const token = await api('POST', '/api/v1/registrationtokens', { metadata: { name }, spec: { autoApprove: true } });
    expect(token.status, JSON.stringify(token.body)).toBe(201);
    return token.body.status.token;
  }

  /**
   * The installer's seed ISO (server over HTTPS, the run's CA, NTP, static address, host name),
   * repacked without its token: the device pairs at the edge.
   */
  async function pairingSeed(): Promise<string> {
    const installed = join(work, 'installer-seed.iso');
    const made = await cli(
      [
        'installer',
        'seed-iso',
        ...['--token', 'lab', '--token-secret', await newToken('lab'), '--agent-server', `https://${HOST_IP}:${serverPort()}`, '--ca-file', pki.caFile],
        ...['--hostname', 'lab-device', '--ntp', HOST_IP, '--network', 'static', '--interface', GUEST_NIC, '--address', `${GUEST_IP}/24`],
        ...['--gateway', HOST_IP, '--dns', '10.0.2.3', '-o', installed],
      ],
      cliEnv,
    );
    expect(made.code, made.out).toBe(0);
    const seedDir = join(work, 'seed');
    const unpacked = spawnSync('xorriso', ['-osirrox', 'on', '-indev', installed, '-extract', '/', seedDir], { encoding: 'utf8' });
    expect(unpacked.status, unpacked.stderr).toBe(0);
    const userData = parse(readFileSync(join(seedDir, 'user-data'), 'utf8'));
    expect(userData.edgeplane.token).toBeTruthy();
    delete userData.edgeplane.token;
    chmodSync(seedDir, 0o755);
    writeFileSync(join(seedDir, 'user-data'), `#cloud-config\n${stringify(userData)}`);
    expect(readFileSync(join(seedDir, 'network-config'), 'utf8')).toContain(GUEST_IP);
    const seed = join(work, 'seed.iso');
    const iso = spawnSync('xorriso', ['-as', 'mkisofs', '-output', seed, '-volid', 'cidata', '-joliet', '-rock', seedDir], { encoding: 'utf8' });
    expect(iso.status, iso.stderr).toBe(0);
    return seed;
  }

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'ep-lab-'));
    pki = makeTestPki(mkdtempSync(join(work, 'pki-')), [HOST_IP]);
    registry = await startRegistry();
    ntp = await startNtpServer();
    const hello = buildHelloImage(join(work, 'hello'), '1', HELLO_LINE);
    await pushOciLayout(hello, `${registry.host}/lab/hello:1`);
    helloRef = `${HOST_IP}:${registry.host.split(':')[1]}/lab/hello:1`;
    t = await testServer('sqlite', { offlineAfterSeconds: 20, tlsCert: pki.certFile, tlsKey: pki.keyFile });
    expect(t.url).toMatch(/^https:/);
    // The API over HTTPS, trusting the run's CA (the test server's own helper uses the default store).
    const trustedFetch = serverTrust(pki.caFile).fetch;
    api = async (method, path, body) => {
      const res = await trustedFetch(`${t.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${t.admin}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    cliEnv = { EDGEPLANE_CONFIG: join(work, 'cli.yaml'), EDGEPLANE_SERVER: t.url, EDGEPLANE_TOKEN: t.admin, EDGEPLANE_CA_FILE: pki.caFile };
    fleet = new LabFleet(api, registry, work);
    // Image 1 is installed from the disk; 2 is the upgrade; 3 boots but fails its own health check;
    // 4 hangs its trial boot: its health check stops the kernel dead (a crash with automatic reboot
    // after a panic turned off), which only the hardware watchdog gets out of.
    // Images 2-4 are built while the device boots image 1 (the A/B scenarios wait for them).
    await fleet.publish('1.0.0', { disk: true });
    fleet.publishInBackground('2.0.0');
    fleet.publishInBackground('3.0.0', {
      healthChecks: [
        { name: 'app-ready', type: 'command', command: ['sh', '-c', 'echo "app 3.0.0 is not ready" >&2; exit 1'], retries: 1, timeoutSeconds: 10 },
      ],
    });
    const hang = 'echo "lab: 4.0.0 hangs its trial boot" >/dev/console; echo 0 >/proc/sys/kernel/panic; echo c >/proc/sysrq-trigger';
    fleet.publishInBackground('4.0.0', { healthChecks: [{ name: 'hangs', type: 'command', command: ['sh', '-c', hang], retries: 1, timeoutSeconds: 300 }] });
    const seed = await pairingSeed();
    await fleet.addProfileRevision(0);
    const serialLog = join(ARTIFACTS, 'serial.log');
    rmSync(serialLog, { force: true });
    // A run that was killed leaves its last boot's output: the first boot must not find its pairing code.
    rmSync(`${serialLog}.current`, { force: true });
    // The installer disk written to the start of a blank 8 GiB disk.
    const built = fleet.images[0].built;
    const file = join(work, 'device.img');
    const copied = spawnSync('cp', ['--sparse=always', built.disk!, file], { encoding: 'utf8' });
    expect(copied.status, copied.stderr).toBe(0);
    truncateSync(file, DISK_BYTES);
    disk = new LabDisk(file, () => built.layout, work);
    // Every reset is a power cycle (a warm reset under TCG right after a slot write sometimes leaves
    // OVMF spinning: LabVm powerCycleOnReset); the watchdog's expiry still shows as a WATCHDOG event.
    vm = new LabVm({
      disk: file,
      seedIso: seed,
      accel: lab.ok ? lab.accel : 'tcg',
      serialLog,
      timeoutMs: LEAK_GUARD_MS,
      uuid: randomUUID(),
      watchdog: true,
      powerCycleOnReset: true,
      // 2 GiB, as edge boxes have at least: a slot fill's unpacked tree stays in the page cache for mkfs.
      memoryMiB: 2048,
    });
  }, 1_800_000);

  beforeEach(() => {
    started = Date.now();
  });
  afterEach((ctx) => {
    const seconds = Math.round((Date.now() - started) / 1000);
    times.push({ name: ctx.task.name, seconds });
    console.warn(`[lab] ${seconds} s: ${ctx.task.name} (${ctx.task.result?.state ?? 'unknown'})`);
  });

  afterAll(async () => {
    if (times.length)
      console.warn(
        `[lab] scenario times:\n${times.map((s) => `  ${String(s.seconds).padStart(5)} s  ${s.name}`).join('\n')}\n  total ${times.reduce((a, s) => a + s.seconds, 0)} s`,
      );
    await vm?.stop();
    await t?.close();
    await registry?.stop();
    await ntp?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(
    'boots from a blank 8 GiB disk; the pairing code is on the screen (tty0) and the serial console (ttyS0); claimed, the agent registers over HTTPS with the CA from the seed and comes online on slot A',
    async () => {
      vm.start();
      const banner = /Pairing code: ([2-9A-HJ-NP-Z]{8})/;
      await serialShows(banner, BOOT_MS);
      const code = banner.exec(vm.serial())![1];
      // tty0 is a graphical console under UEFI: the screen dump's QR code is decoded (the claim URL
      // with the code) and its text is read by OCR.
      const screen = join(ARTIFACTS, 'screen');
      const { text, qr } = await until(
        'the pairing code and its QR code are on the screen',
        async () => {
          await vm.screendump(`${screen}.ppm`);
          const qr = decodeScreenQr(`${screen}.ppm`);
          const read = ocrScreen(`${screen}.ppm`, screen);
          return qr?.endsWith(`/claim?code=${code}`) && screenTextHasCode(read, code) && { text: read, qr };
        },
        120_000,
      );
      expect(qr).toBe(`https://${HOST_IP}:${serverPort()}/claim?code=${code}`);
      expect(text).toMatch(/Pairing code/);
      // Once on the serial console (the agent's output goes there; its own console write is for the screen).
      expect(vm.serial().split(`Pairing code: ${code}`).length - 1).toBe(1);
      const claimed = await cli(['claim', code, '--site', 'lab'], cliEnv);
      expect(claimed.code, claimed.out).toBe(0);
      const found = await until(
        'the claimed host registers and comes online',
        async () => {
          const list = (await api('GET', '/api/v1/edgehosts')).body.items as { metadata: { name: string }; status: { connectivity: string } }[];
          return list.find((h) => h.status.connectivity === 'online');
        },
        BOOT_MS,
      );
      hostName = found.metadata.name;
      expect(vm.serial()).toContain('Edgeplane: booting committed slot A');
      expect(vm.serial()).toMatch(/edgeplane-os: .*"version":"1.0.0".* booted from slot A/);
      // The installed image is the one the profile pins: assigning revision 1 changes nothing on disk.
      await fleet.assignRevision(hostName, 1);
      const os = await until(
        'slot A is reported committed',
        async () => {
          const s = await fleet.osStatus(hostName);
          return s?.upToDate && s.phase === 'Committed' ? s : undefined;
        },
        120_000,
      );
      expect(os).toMatchObject({ digest: fleet.images[0].digest, bootedSlot: 'A', activeSlot: 'A', phase: 'Committed' });
    },
    T.register,
  );

  it(
    'the device took its static address, time server and CA from the seed; an agent without the CA refuses the server; data fills the 8 GiB disk less the ESP and the three squashfs slots: about 7 GiB',
    async () => {
      // Static network (cloud-init network-config v2 from the installer): the address, no DHCP lease.
      const addr = await execUntil('the static address is up', 'ip -4 -o addr show; ip -4 route show default', (o) => o.includes(`${GUEST_IP}/24`));
      expect(addr).toMatch(new RegExp(`${GUEST_NIC}\\s+inet ${GUEST_IP.replace(/\./g, '\\.')}/24`));
      expect(addr).toMatch(new RegExp(`default via ${HOST_IP.replace(/\./g, '\\.')}`));
      expect(addr).not.toContain('10.0.2.15/24'); // what QEMU's DHCP server would have handed out
      expect((await exec('hostname')).stdout.trim()).toBe('lab-device');
      // cloud-init took the seed from NoCloud without complaint: no schema warning on the console
      // (the image's own cloud.cfg.d is validated with the seed), no error in its result.
      expect(vm.serial()).not.toMatch(/Invalid (cloud|network)-config/);
      const result = JSON.parse((await exec('cat /run/cloud-init/result.json')).stdout).v1;
      expect(result.datasource).toContain('NoCloud');
      expect(result.errors).toEqual([]);
      // NTP: the device's chrony selected the lab's chronyd (^* = the source it is synced to).
      const sources = await execUntil('chrony synced to the lab time server', 'chronyc -n sources', (o) => /^\^\*\s+10\.0\.2\.2\s/m.test(o));
      expect(sources).toMatch(/^\^\*\s+10\.0\.2\.2\s+8\s/m); // stratum 8: the lab server's `local stratum 8`
      // The same agent program without the CA (Node's own store only: no NODE_EXTRA_CA_CERTS, which the
      // agent's unit sets and its sessions inherit) refuses the server's certificate and registers
      // nothing, although its token is valid.
      const before = (await api('GET', '/api/v1/edgehosts')).body.items.length;
      const secret = await newToken('no-ca');
      const refused = await exec(
        `env -u NODE_EXTRA_CA_CERTS edgeplane agent --server https://${HOST_IP}:${serverPort()} --token ${secret} --data-dir /tmp/no-ca --no-pairing-page >/tmp/no-ca.log 2>&1 & ` +
          'p=$!; for i in $(seq 120); do sleep 1; grep -qi certificate /tmp/no-ca.log && break; kill -0 $p 2>/dev/null || break; done; kill $p 2>/dev/null; cat /tmp/no-ca.log',
      );
      expect(refused.stdout).toMatch(/certificate/i);
      expect((await api('GET', '/api/v1/edgehosts')).body.items.length).toBe(before);
      // The data partition grew to the end of the 8 GiB disk: all of it but the 1 MiB before the first
      // partition, the ESP, the three slots (A, B, recovery) and the backup GPT (33 sectors).
      const table = disk.gpt();
      const sector = table.sectorsize;
      const data = table.partitions.find((p) => p.name === 'data')!;
      const others = table.partitions.filter((p) => p.name !== 'data').reduce((a, p) => a + p.size * sector, 0);
      expect(table.lastlba + 1 + 33).toBe(DISK_BYTES / sector); // the backup GPT moved to the end of the disk
      expect(data.size * sector).toBe(DISK_BYTES - 1024 ** 2 - others - 33 * sector);
      // Nearly all of the disk: the squashfs slots are a few hundred MiB each (the image, gzip-compressed, plus 25%).
      expect(data.size * sector).toBeGreaterThan(0.85 * DISK_BYTES);
      for (const slot of ['root-a', 'root-b', 'recovery'])
        expect(table.partitions.find((p) => p.name === slot)!.size * sector).toBeLessThanOrEqual(512 * 1024 ** 2);
      expect(disk.squashfs('root-a')).toBe(true);
      const df = await exec('df -B1 --output=size /data | tail -1');
      expect(Number(df.stdout.trim())).toBeGreaterThan(0.95 * data.size * sector);
    },
    T.device,
  );

  it(
    'containerd pulls an OCI image from the lab registry and runs a container that prints its line',
    async () => {
      const out = await execUntil(
        'the container ran',
        `ctr -n lab image pull --plain-http ${helloRef} >/dev/null && ctr -n lab run --rm ${helloRef} lab-hello-${Date.now()}`,
        (o) => o.includes(HELLO_LINE),
      );
      expect(out.trim()).toBe(HELLO_LINE);
    },
    T.container,
  );

  const ab = { vm: () => vm, disk: () => disk, fleet: () => fleet, hostName: () => hostName, waits, bootMs: BOOT_MS, upgradeMs: UPGRADE_MS };
  abScenarios(ab);

  it(
    'a trial boot that hangs is reset by the hardware watchdog and the boot loader falls back',
    async () => {
      await fleet.addProfileRevision(3);
      await fleet.assignRevision(hostName, 4);
      await serialShows('lab: 4.0.0 hangs its trial boot', UPGRADE_MS + BOOT_MS);
      const hungAt = vm.serial().lastIndexOf('lab: 4.0.0 hangs its trial boot');
      const watchdogs = vm.events.filter((e) => e.event === 'WATCHDOG').length;
      // Nothing in the guest reboots it now (no automatic reboot after the panic): only the i6300esb
      // that systemd arms, which QEMU reports as a WATCHDOG event with action reset.
      await until('the watchdog resets the VM', () => vm.events.filter((e) => e.event === 'WATCHDOG').length > watchdogs, BOOT_MS);
      expect(vm.events.filter((e) => e.event === 'WATCHDOG').at(-1)?.data).toMatchObject({ action: 'reset' });
      const os = await until(
        'the host reports the fallback',
        async () => {
          const s = await fleet.osStatus(hostName);
          return s?.phase === 'FellBack' && s.desiredDigest === fleet.images[3].digest ? s : undefined;
        },
        BOOT_MS,
      );
      expect(os).toMatchObject({ digest: fleet.images[1].digest, bootedSlot: 'B', activeSlot: 'B', upToDate: false });
      expect(os.message).toMatch(/slot A did not boot|fell back/);
      const serial = vm.serial();
      expect(serial).toContain('Edgeplane: one-time trial boot of slot A (committed slot: B)');
      expect(serial).toMatch(/edgeplane-os: .*"version":"4.0.0".* booted from slot A/);
      expect(serial.slice(hungAt)).toMatch(/Kernel panic - not syncing: sysrq triggered crash/);
      expect(serial.slice(hungAt)).toContain('Edgeplane: booting committed slot B');
    },
    T.watchdog,
  );

  recoveryScenario(ab);
});
