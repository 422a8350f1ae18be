import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
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
export async function startSwtpm(options: { ekCertificate?: boolean } = {}): Promise<SoftwareTpm> {
  const dir = await mkdtemp(join(tmpdir(), 'swtpm-'));
  const stateDir = join(dir, 'state');
  await mkdir(stateDir);
  await run('swtpm_setup', [
    '--tpm2',
    '--tpmstate',
    stateDir,
    '--createek',
    ...(options.ekCertificate ? ['--create-ek-cert', '--create-platform-cert'] : []),
    '--overwrite',
  ]);
  // tpm2-tss's swtpm TCTI talks to the control channel on port + 1 (tcti-swtpm.c); a taken port + 1
  // makes swtpm exit at once, and the wait below reports it.
  const port = await freePort();
  const ctrl = port + 1;
  const child: ChildProcess = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    { stdio: 'ignore' },
  );
  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  // Ready once tpm2-tools get an answer through the TCTI.
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await run('tpm2_getcap', [`--tcti=${tcti}`, 'properties-fixed']);
      break;
    } catch (err) {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill();
        throw new Error(`swtpm did not answer on port ${port}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    tcti,
    stateDir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill();
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
