import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeviceIdentity, SimDevice } from '@edgeplane/agent';
import { type DeviceIdentityClaim, type TpmActivationAnswer, TpmActivationChallenge } from '@edgeplane/protocol';
import { register, TestDevice } from './device.js';
import freePort from './free-port.js';

const run = promisify(execFile);

/** A running software TPM 2.0 (swtpm) with its own state: one per simulated device, like one per VM. */
export interface SoftwareTpm {
  /** TCTI for tpm2-tools (`swtpm:host=127.0.0.1,port=N`); give it to SimDevice's `tpm` option. */
  tcti: string;
  stateDir: string;
  stop(): Promise<void>;
}

/**
 * Manufactures a fresh TPM state with swtpm_setup (an EK, and with `ekCertificate` an EK certificate
 * signed by swtpm's local CA in NV 0x01c00002, as a vendor provisions one), then serves it with
 * `swtpm socket` on loopback. Commands are `--flags not-need-init,startup-clear`: the TPM is started
 * as firmware would have done. Another call gives another TPM (other seeds): a key wrapped by one
 * cannot be loaded by the other. swtpm(8), swtpm_setup(8) of swtpm 0.7.
 */
export async function startSwtpm(options: { ekCertificate?: boolean; stateDir?: string } = {}): Promise<SoftwareTpm> {
  const dir = await mkdtemp(join(tmpdir(), 'swtpm-'));
  // `stateDir`: serve that existing TPM (e.g. a lab VM's, while the VM is off) instead of manufacturing one; it is not removed.
  const stateDir = options.stateDir ?? join(dir, 'state');
  if (!options.stateDir) await mkdir(stateDir);
  if (!options.stateDir)
    await run('swtpm_setup', [
      '--tpm2',
      '--tpmstate',
      stateDir,
      '--createek',
      ...(options.ekCertificate ? ['--create-ek-cert', '--create-platform-cert'] : []),
      '--overwrite',
    ]);
  // tpm2-tss's swtpm TCTI talks to the control channel on port + 1 (tcti-swtpm.c); a taken port + 1
  // (or a port taken between freePort and swtpm's bind) makes swtpm exit at once: then another port.
  let child: ChildProcess | undefined;
  let tcti = '';
  for (let attempt = 1; !child; attempt++) {
    const port = await freePort();
    const started = serve(stateDir, port);
    tcti = `swtpm:host=127.0.0.1,port=${port}`;
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await run('tpm2_getcap', [`--tcti=${tcti}`, 'properties-fixed']);
        child = started;
        break;
      } catch (err) {
        if (started.exitCode !== null && attempt < 5) break;
        if (Date.now() > deadline || started.exitCode !== null) {
          started.kill();
          throw new Error(`swtpm did not answer on port ${port}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  const running = child;
  return {
    tcti,
    stateDir,
    async stop() {
      if (running.exitCode === null) {
        const exited = new Promise((r) => running.once('exit', r));
        running.kill();
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function serve(stateDir: string, port: number): ChildProcess {
  return spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    { stdio: 'ignore' },
  );
}

/**
 * A hand-driven device whose key lives in a swtpm: the agent's own DeviceIdentity on a SimDevice with
 * that TPM attached, registering through the public endpoint and answering the server's TPM
 * activation challenge (TpmActivationRequired) as the agent does.
 */
export class TpmTestDevice {
  private constructor(
    readonly uid: string,
    readonly identity: DeviceIdentity,
  ) {}

  /** A new key in `tpm` (its identity.json under a fresh directory). */
  static async create(tpm: SoftwareTpm, uid: string = randomUUID()): Promise<TpmTestDevice> {
    const dir = await mkdtemp(join(tmpdir(), 'tpm-device-'));
    const identity = await DeviceIdentity.loadOrCreate(join(dir, 'data'), { device: new SimDevice({ root: join(dir, 'root'), tpm: { tcti: tpm.tcti } }) });
    if (identity.kind !== 'tpm') throw new Error('the swtpm did not make the identity key');
    return new TpmTestDevice(uid, identity);
  }

  get claim() {
    return this.identity.claim as Extract<DeviceIdentityClaim, { kind: 'tpm' }>;
  }

  /** Registration body with `credential` (`{ token }` or `{ pairing }`), and `activation` when answering a challenge. */
  async registerBody(credential: Record<string, unknown>, activation?: TpmActivationAnswer, claim = this.claim) {
    return {
      ...credential,
      deviceUid: this.uid,
      publicKey: this.identity.publicKey,
      identity: { ...claim, ...(activation ? { activation } : {}) },
      proof: await this.identity.signRegistrationProof(this.uid),
      inventory: (await TestDevice.create(this.uid)).inventory(),
      agentVersion: 'test-1',
    };
  }

  /** The answer to a TpmActivationRequired body: the challenge, and the secret this TPM recovers. */
  async answer(refusal: { error: { details?: unknown } }): Promise<TpmActivationAnswer> {
    const c = TpmActivationChallenge.parse(refusal.error.details);
    return { challenge: c.challenge, secret: await this.identity.activateCredential(c.credential) };
  }

  /** Registers as the agent does: asks, activates the credential, registers again with the answer. */
  async register(server: string, credential: Record<string, unknown>): ReturnType<typeof register> {
    const first = await register(server, await this.registerBody(credential));
    if (first.body?.error?.code !== 'TpmActivationRequired') throw new Error(`expected TpmActivationRequired, got ${JSON.stringify(first.body)}`);
    return register(server, await this.registerBody(credential, await this.answer(first.body)));
  }

  connectToken(host: string): Promise<string> {
    return this.identity.signConnectToken(host);
  }
}
