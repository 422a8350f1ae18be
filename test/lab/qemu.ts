import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** OVMF (UEFI firmware for QEMU, Debian package ovmf): code read-only, a private copy of the variable store per VM. */
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/**
 * UEFI firmware of a lab VM. 'secure-boot': OVMF_CODE_4M.secboot.fd with OVMF_VARS_4M.ms.fd, the
 * variable store with Microsoft's keys enrolled and Secure Boot enabled (what a PC ships with). That
 * firmware needs SMM (it aborts without it: /usr/share/doc/ovmf/README.Debian, ovmf 2022.11-6), so a
 * q35 machine with SMM, its flash marked secure so only SMM code writes the variables.
 */
export type LabFirmware = 'uefi' | 'secure-boot';
const FIRMWARE: Record<LabFirmware, { code: string; vars: string; machine: string[] }> = {
  uefi: { code: OVMF_CODE, vars: OVMF_VARS, machine: [] },
  'secure-boot': {
    code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
    vars: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
    machine: ['-machine', 'q35,smm=on', '-global', 'driver=cfi.pflash01,property=secure,value=on'],
  },
};

/** What the lab needs on the host, and whether KVM can run guests here. */
export function probeLab(): { ok: true; accel: 'kvm' | 'tcg' } | { ok: false; reason: string } {
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  if (qemu.error) return { ok: false, reason: 'qemu-system-x86_64 is not installed (Debian: qemu-system-x86)' };
  if (!existsSync(OVMF_CODE)) return { ok: false, reason: `no UEFI firmware at ${OVMF_CODE} (Debian: ovmf)` };
  if (!existsSync('/usr/lib/grub/x86_64-efi/linux.mod')) return { ok: false, reason: 'no GRUB EFI modules (Debian: grub-efi-amd64-bin)' };
  for (const [tool, pkg] of [
    ['busybox', 'busybox-static'],
    ['mkfs.vfat', 'dosfstools'],
    ['mcopy', 'mtools'],
    ['sfdisk', 'fdisk'],
    ['skopeo', 'skopeo'],
    ['docker-registry', 'docker-registry'],
    ['cpio', 'cpio'],
    ['tpm2', 'tpm2-tools'], // the busybox image carries it for the agent's TPM identity
  ]) {
    if (spawnSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool} || test -x /sbin/${tool}`]).status !== 0)
      return { ok: false, reason: `${tool} is not installed (Debian: ${pkg})` };
  }
  return { ok: true, accel: kvmBoots() ? 'kvm' : 'tcg' };
}

/**
 * /dev/kvm can exist yet fail on the first guest instruction (nested, paravirtual KVM): start the
 * firmware under KVM for a few seconds and use KVM only if it prints its boot manager banner.
 */
export function kvmBoots(): boolean {
  if (!existsSync('/dev/kvm')) return false;
  const dir = join(process.env.TMPDIR ?? '/tmp', `ep-kvm-probe-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    copyFileSync(OVMF_VARS, join(dir, 'vars.fd'));
    const log = join(dir, 'serial.log');
    spawnSync(
      'qemu-system-x86_64',
      [...firmware(join(dir, 'vars.fd')), '-accel', 'kvm', '-m', '256', '-display', 'none', '-monitor', 'none', '-net', 'none', '-serial', `file:${log}`],
      {
        timeout: 8000,
        stdio: 'ignore',
      },
    );
    return existsSync(log) && readFileSync(log, 'utf8').includes('BdsDxe');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function firmware(vars: string, kind: LabFirmware = 'uefi'): string[] {
  const f = FIRMWARE[kind];
  return [...f.machine, '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${f.code}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`];
}

export interface VmOptions {
  disk: string;
  seedIso?: string;
  /**
   * An install medium (the installer ISO) on a read-only virtio disk, as a USB stick the ISO was
   * written to. The boot order is the disk first, then the medium: a blank disk has nothing to boot,
   * so the firmware starts the installer; once installed, the disk boots (as on a PC whose internal
   * disk comes first).
   */
  installMedia?: string;
  accel: 'kvm' | 'tcg';
  /** Serial console log, appended to across restarts (kept as a test artifact). */
  serialLog: string;
  /**
   * Leak guard for one QEMU run: it is killed after this long whatever happens (and when the test
   * process exits). Several tests share one run, so this must cover their budgets added up; a run
   * killed by it says so in assertHealthy's error.
   */
  timeoutMs: number;
  /** SMBIOS system UUID: the device UID the agent reports. */
  uuid: string;
  /** UEFI firmware (default 'uefi': OVMF without Secure Boot). */
  firmware?: LabFirmware;
  memoryMiB?: number;
  /**
   * An Intel 6300ESB watchdog (`-device i6300esb`) that resets the VM when it expires
   * (`-action watchdog=reset`); QMP reports each expiry as a WATCHDOG event.
   */
  watchdog?: boolean;
  /**
   * A TPM 2.0: swtpm serving the state in `stateDir` (kept across runs: the same TPM after a reboot
   * or power cut; another directory is another TPM). Manufactured with swtpm_setup when the
   * directory is empty (an EK and an EK certificate from swtpm's local CA, as a vendor provisions).
   */
  tpm?: { stateDir: string };
  /**
   * Every guest reset is a power cycle, as the appliance's VMs have it (packages/agent/src/managers/
   * virt/domain-xml.ts): QEMU runs with `-action reboot=shutdown`, so a reboot, a watchdog reset or a
   * triple fault ends the process, and the lab starts a fresh one on the same disk, firmware variables
   * and TPM. Under TCG a warm reset in the same process right after the guest wrote its other slot
   * sometimes left OVMF spinning before its first line; a fresh process boots at once. `serial()`
   * covers every power cycle since the test's own start().
   */
  powerCycleOnReset?: boolean;
}

/** SHUTDOWN reasons that are a reset under `-action reboot=shutdown` (QAPI ShutdownCause, QEMU 7.2): the guest's, and QMP system_reset's. */
const RESET_REASONS = ['guest-reset', 'host-qmp-system-reset'];

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/**
 * A QMP (QEMU Machine Protocol) connection on a unix socket: JSON objects one per line, a greeting,
 * `qmp_capabilities`, then commands answered in order and asynchronous events. Hand-written: the
 * protocol is these few lines, and the lab needs only `screendump` and the event log.
 */
class Qmp {
  private buffer = '';
  private waiting: { resolve(v: unknown): void; reject(e: Error): void }[] = [];

  private constructor(
    private readonly socket: Socket,
    private readonly onEvent: (e: QmpEvent) => void,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line) this.receive(JSON.parse(line) as Record<string, unknown>);
      }
    });
    const fail = () => {
      for (const w of this.waiting.splice(0)) w.reject(new Error('the QMP connection closed (QEMU exited)'));
    };
    socket.on('close', fail);
    socket.on('error', fail);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Resolves when QEMU closed the connection (after the last event it sent was read). */
  readonly closed: Promise<void>;

  /** Connects once QEMU has created the socket (it does so before the guest starts). */
  static async connect(path: string, alive: () => boolean, onEvent: (e: QmpEvent) => void): Promise<Qmp> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const socket = await new Promise<Socket | undefined>((resolve) => {
        const s = connect(path);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(undefined));
      });
      if (socket) {
        const qmp = new Qmp(socket, onEvent);
        await qmp.next(); // the greeting
        await qmp.execute('qmp_capabilities');
        return qmp;
      }
      if (!alive() || Date.now() > deadline) throw new Error(`no QMP socket at ${path}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private receive(msg: Record<string, unknown>): void {
    if (typeof msg.event === 'string') {
      this.onEvent(msg as unknown as QmpEvent);
      return;
    }
    const w = this.waiting.shift();
    if (!w) return;
    if (msg.error) w.reject(new Error(`QMP: ${JSON.stringify(msg.error)}`));
    else w.resolve(msg.return ?? msg.QMP);
  }

  private next(): Promise<unknown> {
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const reply = this.next();
    this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
    return reply;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * One edge device: QEMU with OVMF, the installer disk on virtio, the seed ISO as a second virtio disk,
 * user-mode networking (the host is 10.0.2.2 from inside). Reboots happen inside one QEMU process;
 * `powerCut()` kills it (SIGKILL: no flush, like pulling the plug) and `start()` powers it on again.
 */
export class LabVm {
  private child?: ChildProcess;
  private exited?: Promise<number | null>;
  private hardLimit?: NodeJS.Timeout;
  /** Why the last run ended when the test did not end it (the leak guard), for assertHealthy's error. */
  private endedBy?: string;
  private stopping = false;
  private readonly vars: string;
  private readonly qmpSocket: string;
  private qmp?: Promise<Qmp>;
  private swtpm?: Swtpm;
  /** QMP events of every run (RESET, SHUTDOWN, WATCHDOG, ...), oldest first. */
  readonly events: QmpEvent[] = [];

  constructor(private readonly options: VmOptions) {
    this.vars = `${options.serialLog}.ovmf-vars.fd`;
    copyFileSync(FIRMWARE[options.firmware ?? 'uefi'].vars, this.vars);
    // A unix socket path must stay under 108 bytes: not beside the serial log.
    this.qmpSocket = join(tmpdir(), `ep-lab-qmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}.sock`);
  }

  start(): void {
    if (this.child) throw new Error('the VM is already running');
    this.launch(false);
  }

  private launch(powerCycle: boolean): void {
    const o = this.options;
    if (o.tpm) this.swtpm = startSwtpm(o.tpm.stateDir);
    const args = [
      ...firmware(this.vars, o.firmware),
      '-accel',
      o.accel,
      '-m',
      String(o.memoryMiB ?? 1024),
      '-smp',
      '2',
      '-uuid',
      o.uuid,
      // No default devices (the floppy drive, IDE CD-ROM and parallel port a PC gets): the firmware
      // does not try to boot the CD-ROM and the kernel does not probe an empty floppy drive.
      '-nodefaults',
      '-vga',
      'std',
      '-display',
      'none',
      '-monitor',
      'none',
      '-qmp',
      `unix:${this.qmpSocket},server=on,wait=off`,
      ...(o.watchdog ? ['-device', 'i6300esb', '-action', 'watchdog=reset'] : []),
      ...(o.powerCycleOnReset ? ['-action', 'reboot=shutdown'] : []),
      // QEMU docs/specs/tpm.rst (QEMU 7.2), "The QEMU TPM emulator device": the TPM's commands go to swtpm
      // over its control socket; tpm-crb is the interface of firmware TPMs (Intel PTT, AMD fTPM).
      ...(this.swtpm
        ? ['-chardev', `socket,id=chrtpm,path=${this.swtpm.socket}`, '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm', '-device', 'tpm-crb,tpmdev=tpm0']
        : []),
      ...(o.installMedia
        ? [
            '-drive',
            `file=${o.disk},if=none,id=disk0,format=raw,cache=writeback`,
            '-device',
            'virtio-blk-pci,drive=disk0,bootindex=0',
            '-drive',
            `file=${o.installMedia},if=none,id=media0,format=raw,readonly=on`,
            '-device',
            'virtio-blk-pci,drive=media0,bootindex=1',
          ]
        : ['-drive', `file=${o.disk},if=virtio,format=raw,cache=writeback`]),
      ...(o.seedIso ? ['-drive', `file=${o.seedIso},if=virtio,format=raw,readonly=on`] : []),
      '-netdev',
      'user,id=net0',
      '-device',
      // acpi-index=1: the NIC's predictable name is eno1 (systemd-udev), as on a board with one onboard NIC.
      'virtio-net-pci,netdev=net0,acpi-index=1',
      // append=on: a power cycle (powerCycleOnReset) continues the run's log instead of truncating it.
      '-chardev',
      `file,id=serial0,path=${o.serialLog}.current,append=${powerCycle ? 'on' : 'off'}`,
      '-serial',
      'chardev:serial0',
    ];
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.endedBy = undefined;
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.on('exit', async (code, signal) => {
        clearTimeout(this.hardLimit);
        process.off('exit', killOnExit);
        this.swtpm?.stop();
        this.swtpm = undefined;
        // A guest reset ended QEMU (powerCycleOnReset): its SHUTDOWN event says so. QMP delivers the
        // events it sent before the socket closes, so wait for that (bounded) before reading them.
        const qmp = await this.qmp?.catch(() => undefined);
        if (qmp) await Promise.race([qmp.closed, new Promise((r) => setTimeout(r, 2000))]);
        const last = this.events.at(-1);
        const reset = o.powerCycleOnReset && !this.stopping && code === 0 && last?.event === 'SHUTDOWN' && RESET_REASONS.includes(String(last.data?.reason));
        if (!reset) {
          this.endedBy ??= this.stopping ? 'powered off by the test' : `QEMU exited by itself (${signal ?? `code ${code}`})`;
          this.archiveSerial(stderr ? `\n[lab] qemu stderr: ${stderr.trim()}\n` : '');
        }
        qmp?.close();
        this.qmp = undefined;
        rmSync(this.qmpSocket, { force: true });
        this.child = undefined;
        if (reset) {
          appendFileSync(`${o.serialLog}.current`, '\n[lab] ---- the guest reset the machine: power cycle, QEMU started again ----\n');
          // In the same tick as `child` was cleared: no wait sees the VM as not running.
          this.launch(true);
        }
        resolve(code);
      });
    });
    this.qmp = Qmp.connect(
      this.qmpSocket,
      () => this.child === child,
      (e) => this.events.push(e),
    );
    this.qmp.catch(() => undefined);
    this.hardLimit = setTimeout(() => {
      this.endedBy = `the lab's leak guard killed QEMU after ${o.timeoutMs / 60_000} min of one run`;
      child.kill('SIGKILL');
    }, o.timeoutMs);
  }

  /** Writes the screen (the VGA display the guest's tty0 is on) to `file` as a PPM image. */
  async screendump(file: string): Promise<void> {
    if (!this.qmp) throw new Error('the VM is not running');
    await (await this.qmp).execute('screendump', { filename: file });
  }

  /** Runs a QMP command (e.g. `send-key`, `human-monitor-command`) and returns its result. */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (!this.qmp) throw new Error('the VM is not running');
    return (await this.qmp).execute(command, args);
  }

  /** Serial output of the current run (the whole history is in `serialLog` once a run ends). */
  serial(): string {
    const path = `${this.options.serialLog}.current`;
    return existsSync(path) ? readFileSync(path, 'utf8').replace(/\r/g, '') : '';
  }

  /** Everything the serial console printed, all runs, including the current one. */
  history(): string {
    const done = existsSync(this.options.serialLog) ? readFileSync(this.options.serialLog, 'utf8') : '';
    return done + this.serial();
  }

  /**
   * Throws (with the end of the serial log) when the VM is no longer running or its agent keeps
   * crashing, so a lab wait fails at once with the reason instead of at its timeout.
   */
  assertHealthy(): void {
    if (!this.running) throw new Error(`QEMU is not running (${this.endedBy ?? 'never started'}); serial log (all runs) ends:\n${this.history().slice(-3000)}`);
    const serial = this.serial();
    // A clean exit (0) happens at every reboot; a non-zero one is a crash.
    const crashes = serial.match(/the agent exited \([1-9]\d*\)/g)?.length ?? 0;
    if (crashes >= 3) throw new Error(`the agent crashed ${crashes} times; serial log ends:\n${serial.slice(-3000)}`);
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Pulls the plug: SIGKILL, no shutdown, nothing flushed by the guest. */
  async powerCut(): Promise<void> {
    this.stopping = true;
    this.child?.kill('SIGKILL');
    await this.exited;
    this.stopping = false;
  }

  async stop(): Promise<void> {
    await this.powerCut();
    rmSync(this.vars, { force: true });
  }

  private archiveSerial(trailer: string): void {
    const current = `${this.options.serialLog}.current`;
    const text = existsSync(current) ? readFileSync(current, 'utf8') : '';
    appendFileSync(this.options.serialLog, `${text}${trailer}\n[lab] ---- QEMU stopped ----\n`);
    rmSync(current, { force: true });
  }
}

interface Swtpm {
  socket: string;
  running(): boolean;
  stop(): void;
}

/**
 * swtpm(8) (swtpm 0.7) as QEMU's TPM: `swtpm socket --tpm2 --tpmstate dir=... --ctrl type=unixio,path=...`
 * with --daemon, so it returns once the socket exists (QEMU refuses to start without it), and
 * --terminate, so it ends when QEMU closes the connection. Its pid file lets stop() end it otherwise.
 */
function startSwtpm(stateDir: string): Swtpm {
  mkdirSync(stateDir, { recursive: true });
  if (!existsSync(join(stateDir, 'tpm2-00.permall'))) {
    const setup = spawnSync('swtpm_setup', ['--tpm2', '--tpmstate', stateDir, '--createek', '--create-ek-cert', '--create-platform-cert', '--overwrite'], {
      encoding: 'utf8',
    });
    if (setup.status !== 0) throw new Error(`swtpm_setup failed: ${setup.stderr || setup.stdout || setup.error?.message}`);
  }
  // A unix socket path must stay under 108 bytes: in the temp directory, like QMP's.
  const socket = join(tmpdir(), `ep-lab-tpm-${process.pid}-${Math.random().toString(36).slice(2, 8)}.sock`);
  const pidFile = `${socket}.pid`;
  const started = spawnSync(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--ctrl',
      `type=unixio,path=${socket}`,
      '--terminate',
      '--daemon',
      '--pid',
      `file=${pidFile}`,
      '--log',
      `file=${join(stateDir, 'swtpm.log')}`,
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (started.status !== 0) throw new Error(`swtpm did not start: ${started.stderr || started.error?.message}`);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const stop = () => {
    if (alive()) process.kill(pid, 'SIGTERM');
    rmSync(socket, { force: true });
    rmSync(pidFile, { force: true });
  };
  process.once('exit', stop);
  return {
    socket,
    running: alive,
    stop() {
      process.off('exit', stop);
      stop();
    },
  };
}
